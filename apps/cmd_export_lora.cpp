// deltakit export-lora --base B (--finetuned F | --adapter A.h5) (--rank R | --energy E) --out DIR
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "src/pipeline/export_lora.h"

namespace deltakit::cli {

int cmd_export_lora(const Args& args) {
  po::options_description opts("export-lora options");
  opts.add_options()("base", po::value<std::string>(), "base checkpoint")(
      "finetuned", po::value<std::string>()->default_value(""), "fine-tuned checkpoint (or a LoRA folder to re-rank)")(
      "adapter", po::value<std::string>()->default_value(""), "...or a deltakit adapter over the base")(
      "rank", po::value<uint64_t>()->default_value(0), "at most this rank per matrix")(
      "energy", po::value<double>()->default_value(0), "...or the smallest rank keeping this share of ||delta||^2")(
      "only", po::value<std::string>()->default_value(""), "export only matrices matching this glob")(
      "dtype", po::value<std::string>()->default_value(""),
      "factors' dtype: float32, float16, bfloat16 (default: the base's)")(
      "seed", po::value<uint64_t>()->default_value(0), "seed of the randomized SVD above 1024")(
      "threads", po::value<unsigned>()->default_value(0), "worker threads (0: all cores)")(
      "out", po::value<std::string>(), "PEFT adapter folder to write")(
      "overwrite", po::bool_switch(), "replace an existing output (atomically)")("json", po::bool_switch(),
                                                                                 "print a JSON summary");
  po::variables_map vm;
  const char* synopsis = "--base B (--finetuned F | --adapter A.h5) (--rank R | --energy E) [--only GLOB] --out DIR";
  if (!parse("export-lora", synopsis, opts, {}, args, vm)) return 0;
  require(vm, {"base", "out"});
  ExportLoraOptions o;
  o.base = vm["base"].as<std::string>();
  o.finetuned = vm["finetuned"].as<std::string>();
  o.adapter = vm["adapter"].as<std::string>();
  o.out = vm["out"].as<std::string>();
  o.rank = vm["rank"].as<uint64_t>();
  o.energy = vm["energy"].as<double>();
  o.only = vm["only"].as<std::string>();
  o.dtype = vm["dtype"].as<std::string>();
  o.seed = vm["seed"].as<uint64_t>();
  o.threads = vm["threads"].as<unsigned>();
  o.overwrite = vm["overwrite"].as<bool>();
  const ExportLoraReport r = run_export_lora(o, world());
  if (!r.complete) return 0;  // ranks other than 0
  for (const auto& w : r.warnings) warn("export-lora", w);
  double dropped_sq = 0;
  for (const auto& [name, sq] : r.dropped) dropped_sq += sq;
  if (vm["json"].as<bool>()) {
    nlohmann::ordered_json modules = nlohmann::ordered_json::array(), dropped = nlohmann::ordered_json::array();
    for (const auto& m : r.modules)
      modules.push_back(
          {{"tensor", m.tensor}, {"rank", m.rank}, {"energy_kept", m.energy_kept}, {"embedding", m.embedding}});
    for (const auto& [name, sq] : r.dropped)
      dropped.push_back({{"tensor", name}, {"delta_share", r.delta_sq > 0 ? sq / r.delta_sq : 0.0}});
    std::cout << nlohmann::ordered_json{{"out", o.out},
                                        {"modules", modules},
                                        {"dropped", dropped},
                                        {"rel_error", r.rel_error},
                                        {"adapter_bytes", r.adapter_bytes},
                                        {"finetune_bytes", r.finetune_bytes},
                                        {"seconds", r.seconds},
                                        {"ranks", world().size()}}
                     .dump()
              << "\n";
    return 0;
  }
  uint64_t max_rank = 0;
  for (const auto& m : r.modules) max_rank = std::max(max_rank, m.rank);
  std::printf(
      "wrote %s: %zu LoRA modules (rank <= %llu), %s from %s of base-sized tensors (%.1fx smaller), "
      "relative error %.3g, in %.3f s\n",
      o.out.c_str(), r.modules.size(), static_cast<unsigned long long>(max_rank),
      human_bytes(double(r.adapter_bytes)).c_str(), human_bytes(double(r.finetune_bytes)).c_str(),
      r.adapter_bytes ? double(r.finetune_bytes) / r.adapter_bytes : 0.0, r.rel_error, r.seconds);
  if (!r.dropped.empty())
    std::printf(
        "dropped %zu changed tensors a LoRA cannot carry (norms, biases, left out by --only): %.3g of "
        "||delta||^2\n",
        r.dropped.size(), r.delta_sq > 0 ? dropped_sq / r.delta_sq : 0.0);
  return 0;
}

}  // namespace deltakit::cli
