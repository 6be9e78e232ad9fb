// deltakit compress --base B --finetuned F --recipe raw --out ADAPTER
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "src/pipeline/compress.h"

namespace deltakit::cli {

int cmd_compress(const Args& args) {
  po::options_description opts("compress options");
  opts.add_options()("base", po::value<std::string>(), "base checkpoint")(
      "finetuned", po::value<std::string>(), "fine-tuned checkpoint")(
      "recipe", po::value<std::string>()->default_value("raw"), "codec recipe (this build: raw)")(
      "out", po::value<std::string>(), "adapter file to write")(
      "overwrite", po::bool_switch(), "replace an existing output (atomically)")(
      "json", po::bool_switch(), "print a JSON summary");
  po::variables_map vm;
  if (!parse("compress", "--base B --finetuned F --recipe raw --out ADAPTER", opts, {}, args, vm)) return 0;
  require(vm, {"base", "finetuned", "out"});
  CompressOptions o;
  o.base = vm["base"].as<std::string>();
  o.finetuned = vm["finetuned"].as<std::string>();
  o.out = vm["out"].as<std::string>();
  o.recipe = vm["recipe"].as<std::string>();
  o.overwrite = vm["overwrite"].as<bool>();
  CompressReport r = run_compress(o);
  for (const auto& w : r.warnings) warn("compress", w);
  uint64_t unchanged = 0, patches = 0;
  for (const auto& t : r.tensors) unchanged += t.mode == "unchanged", patches += t.exact_patches;
  double gbps = r.seconds > 0 ? r.input_bytes / r.seconds / 1e9 : 0.0;
  if (vm["json"].as<bool>()) {
    std::cout << nlohmann::ordered_json{{"out", o.out}, {"tensors", r.tensors.size()}, {"unchanged", unchanged},
                                        {"exact_patches", patches}, {"input_bytes", r.input_bytes},
                                        {"adapter_bytes", r.adapter_bytes}, {"seconds", r.seconds}}.dump() << "\n";
    return 0;
  }
  std::printf("wrote %s: %zu tensors (%llu unchanged, %llu exact patches), %s from %s of fine-tune in %.3f s (%.2f GB/s)\n",
              o.out.c_str(), r.tensors.size(), static_cast<unsigned long long>(unchanged),
              static_cast<unsigned long long>(patches), human_bytes(double(r.adapter_bytes)).c_str(),
              human_bytes(double(r.input_bytes)).c_str(), r.seconds, gbps);
  return 0;
}

}  // namespace deltakit::cli
