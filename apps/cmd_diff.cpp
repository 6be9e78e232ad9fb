// deltakit diff --base B --finetuned F [--json]: per-tensor ‖δ‖₂, max|δ|, mean|δ|, unchanged share,
// and mean|δ|/mean|θ| per tensor family.
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "src/pipeline/diff.h"

namespace deltakit::cli {

namespace {
nlohmann::ordered_json row_json(const TensorDiff& t) {
  return {{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape}, {"numel", t.numel},
          {"l2", t.l2}, {"rel_l2", t.base_l2 > 0 ? t.l2 / t.base_l2 : 0.0}, {"max_abs", t.max_abs},
          {"mean_abs", t.mean_abs}, {"base_mean_abs", t.base_mean_abs},
          {"rel_mean_abs", t.base_mean_abs > 0 ? t.mean_abs / t.base_mean_abs : 0.0}, {"unchanged_share", t.numel ? double(t.unchanged) / t.numel : 1.0},
          {"nonfinite", t.nonfinite}};
}
}  // namespace

int cmd_diff(const Args& args) {
  po::options_description opts("diff options");
  opts.add_options()("base", po::value<std::string>(), "base checkpoint")(
      "finetuned", po::value<std::string>(), "fine-tuned checkpoint")("json", po::bool_switch(), "print one JSON object");
  po::variables_map vm;
  if (!parse("diff", "--base B --finetuned F [--json]", opts, {}, args, vm)) return 0;
  require(vm, {"base", "finetuned"});
  DiffReport rep = run_diff(vm["base"].as<std::string>(), vm["finetuned"].as<std::string>());
  for (const auto& t : rep.tensors)
    if (t.nonfinite) warn("diff", t.name + ": " + std::to_string(t.nonfinite) + " NaN/Inf deltas left out of the norms");
  if (vm["json"].as<bool>()) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& t : rep.tensors) rows.push_back(row_json(t));
    nlohmann::ordered_json families = nlohmann::ordered_json::array();
    for (const auto& t : rep.families) families.push_back(row_json(t));
    std::cout << nlohmann::ordered_json{{"tensors", rows}, {"families", families}, {"total", row_json(rep.total)},
                                        {"input_bytes", rep.input_bytes}, {"seconds", rep.seconds}}.dump() << "\n";
    return 0;
  }
  std::printf("%-52s %-5s %11s %9s %11s %11s %9s\n", "tensor", "dtype", "|d|_2", "|d|/|w|", "max|d|", "mean|d|", "unchanged");
  auto print = [](const TensorDiff& t) {
    std::printf("%-52s %-5s %11.4e %9.2e %11.4e %11.4e %8.2f%%\n", t.name.c_str(), t.dtype.c_str(), t.l2,
                t.base_l2 > 0 ? t.l2 / t.base_l2 : 0.0, t.max_abs, t.mean_abs,
                t.numel ? 100.0 * t.unchanged / t.numel : 100.0);
  };
  for (const auto& t : rep.tensors) print(t);
  print(rep.total);
  // the size of a fine-tune per kind of weight: SFT of large models moves weights by ~1e-3 of their size
  std::printf("\n%-36s %9s %11s %11s %13s\n", "family", "tensors", "mean|d|", "mean|w|", "mean|d|/|w|");
  for (const auto& f : rep.families) {
    int64_t n = 0;
    for (const auto& t : rep.tensors) n += tensor_family(t.name) == f.name;
    std::printf("%-36s %9lld %11.4e %11.4e %13.4e\n", f.name.c_str(), static_cast<long long>(n), f.mean_abs,
                f.base_mean_abs, f.base_mean_abs > 0 ? f.mean_abs / f.base_mean_abs : 0.0);
  }
  std::printf("read %s in %.3f s (%.2f GB/s)\n", human_bytes(double(rep.input_bytes)).c_str(), rep.seconds,
              rep.seconds > 0 ? rep.input_bytes / rep.seconds / 1e9 : 0.0);
  return 0;
}

}  // namespace deltakit::cli
