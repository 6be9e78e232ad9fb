// deltakit make-fixture --out-base B --out-finetuned F [--size tiny] [--dtype bf16] ...
#include <iostream>

#include "apps/cli_common.h"
#include "formats/checkpoint.h"
#include "src/core/error.h"
#include "src/fixture/llama_fixture.h"

namespace deltakit::cli {

int cmd_make_fixture(const Args& args) {
  po::options_description opts("make-fixture options");
  opts.add_options()("out-base", po::value<std::string>(), "folder for the base checkpoint")(
      "out-finetuned", po::value<std::string>(), "folder for the fine-tuned checkpoint")(
      "size", po::value<std::string>()->default_value("tiny"), "tiny | small | medium | large")(
      "dtype", po::value<std::string>()->default_value("bf16"), "bf16 | f16 | f32")(
      "seed", po::value<uint64_t>()->default_value(1), "random seed")(
      "layers", po::value<uint64_t>(), "override the preset's layer count")(
      "delta-rel", po::value<double>(), "delta std as a share of the weights' std (default 0.05)")(
      "tie-embeddings", po::bool_switch(), "no lm_head (tied to embed_tokens)")(
      "max-shard-size", po::value<std::string>(), "shard the checkpoints at this size (default: one file)")(
      "overwrite", po::bool_switch(), "replace existing folders");
  po::variables_map vm;
  if (!parse("make-fixture", "--out-base B --out-finetuned F [--size tiny] [--dtype bf16]", opts, {}, args, vm))
    return 0;
  require(vm, {"out-base", "out-finetuned"});
  FixtureOptions o = fixture_preset(vm["size"].as<std::string>());
  std::string dt = vm["dtype"].as<std::string>();
  if (dt == "bf16") o.dtype = DType::BF16;
  else if (dt == "f16" || dt == "fp16") o.dtype = DType::F16;
  else if (dt == "f32" || dt == "fp32") o.dtype = DType::F32;
  else throw Error(ErrorCode::Usage, "", "--dtype must be bf16, f16 or f32");
  o.seed = vm["seed"].as<uint64_t>();
  if (vm.count("layers")) o.layers = vm["layers"].as<uint64_t>();
  if (vm.count("delta-rel")) o.delta_rel = vm["delta-rel"].as<double>();
  o.tie_embeddings = vm["tie-embeddings"].as<bool>();
  if (vm.count("max-shard-size")) o.max_shard_bytes = parse_byte_size(vm["max-shard-size"].as<std::string>());
  write_llama_fixture(o, vm["out-base"].as<std::string>(), vm["out-finetuned"].as<std::string>(),
                      vm["overwrite"].as<bool>());
  std::printf("wrote %s and %s\n", vm["out-base"].as<std::string>().c_str(), vm["out-finetuned"].as<std::string>().c_str());
  return 0;
}

}  // namespace deltakit::cli
