// deltakit riemann: the loss change of delta-parameter edits and its Riemann-sum estimates
// (algorithms.md §4; src/edits/riemann_sweep.h runs it), with accuracy and divergent tokens of
// each edited model, one row per edit and one JSON object per edit with --json.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/cli_common.h"
#include "src/core/error.h"
#include "src/edits/riemann_sweep.h"
#include "src/model/kernels.h"

namespace deltakit::cli {

int cmd_riemann(const Args& args) {
  po::options_description opts("riemann options");
  opts.add_options()("base", po::value<std::string>(), "W_pre: the base model folder")(
      "finetuned", po::value<std::string>(), "W_post: the fine-tuned model folder")(
      "edit", po::value<std::vector<std::string>>()->composing(),
      "an edit (repeatable): dare:p=,k= | dare_sign:k= | dare_grad:k= | drop_only:p= | magnitude:p= | bitdelta:m= | "
      "bitdelta_random:dist=normal|uniform | bitdelta_levels:bits= | lowrank:rank= | expo:alpha= | "
      "model:path=DIR[,label=NAME] (D = W_DIR - W_post)")("C", po::value<std::string>()->default_value("1,2,5,10"),
                                                          "Riemann sums with these numbers of points")(
      "calibration", po::value<std::string>()->default_value("corpus"),
      "held-out data: corpus | skill:NAME | tokens:FILE")("samples", po::value<int64_t>()->default_value(32),
                                                          "held-out sequences")(
      "seq-len", po::value<int64_t>()->default_value(64), "tokens per sequence (at most the context)")(
      "tolerance", po::value<double>()->default_value(0.05),
      "competitive when |dL| <= this share of the fine-tune's own loss gain L(W_pre) - L(W_post)")(
      "task", po::value<std::string>(), "also exact-match accuracy on this skill")(
      "samples-task", po::value<int64_t>()->default_value(200), "examples for --task")(
      "prompts-from", po::value<std::string>(), "also FDT against the fine-tune on these prompts")(
      "prompts", po::value<int64_t>()->default_value(32), "prompts for FDT")(
      "new-tokens", po::value<int64_t>()->default_value(8), "N for FDT")(
      "threads", po::value<int>()->default_value(0), "threads (0: all cores)")("json", po::bool_switch(),
                                                                               "one JSON object per edit");
  po::variables_map vm;
  if (!parse("riemann", "--base PRE --finetuned POST --edit E [--edit E]... [--C 1,2,5,10] [--calibration SRC]", opts,
             {}, args, vm))
    return 0;
  require(vm, {"base", "finetuned", "edit"});
  kernels::set_threads(vm["threads"].as<int>());
  std::vector<int64_t> C;
  {
    std::istringstream in(vm["C"].as<std::string>());
    for (std::string x; std::getline(in, x, ',');) {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(x, &used);
      } catch (const std::exception&) {
      }
      if (used != x.size() || v < 1) throw Error(ErrorCode::Usage, "", "--C takes positive integers, e.g. 1,2,5,10");
      C.push_back(v);
    }
  }
  RiemannSweepOptions o;
  o.base = vm["base"].as<std::string>(), o.finetuned = vm["finetuned"].as<std::string>();
  o.edits = vm["edit"].as<std::vector<std::string>>();
  o.C = C;
  o.calibration = vm["calibration"].as<std::string>();
  o.samples = vm["samples"].as<int64_t>(), o.seq_len = vm["seq-len"].as<int64_t>();
  o.tolerance = vm["tolerance"].as<double>();
  if (vm.count("task")) o.task = vm["task"].as<std::string>();
  o.task_samples = vm["samples-task"].as<int64_t>();
  if (vm.count("prompts-from")) o.prompts_from = vm["prompts-from"].as<std::string>();
  o.prompts = vm["prompts"].as<int64_t>(), o.new_tokens = vm["new-tokens"].as<int64_t>();
  const bool json = vm["json"].as<bool>();
  RiemannSweepStart start;
  riemann_sweep(
      o,
      [&](const RiemannSweepStart& s) {
        start = s;
        std::printf("L(W_pre) %.5f  L(W_post) %.5f  fine-tune gain %.5f  competitive: |dL| <= %.5f\n", s.loss_pre,
                    s.loss_post, s.gain, s.tolerance);
        std::printf("%-30s %11s", "edit", "dL");
        for (int64_t c : C) std::printf("  est C=%-4lld", static_cast<long long>(c));
        std::printf(" %-12s%s%s\n", "class", s.accuracy ? "  accuracy" : "", s.fdt ? "    FDT" : "");
      },
      [&](const RiemannEditRow& row) {
        const RiemannReport& r = row.report;
        std::printf("%-30s %11.5f", row.edit.c_str(), r.delta);
        for (double v : r.estimate) std::printf("  %11.5f", v);
        std::printf(" %-12s", row.verdict.c_str());
        if (row.accuracy >= 0) std::printf("  %7.1f%%", 100 * row.accuracy);
        if (row.fdt >= 0) std::printf("  %5.2f", row.fdt);
        std::printf("\n");
        if (json) {
          nlohmann::ordered_json j{
              {"edit", row.edit},         {"loss_pre", start.loss_pre}, {"loss_post", start.loss_post},
              {"loss_edit", r.loss_edit}, {"delta_loss", r.delta},      {"C", r.C},
              {"estimate", r.estimate},   {"class", row.verdict}};
          if (row.accuracy >= 0) j["accuracy"] = row.accuracy;
          if (row.fdt >= 0) j["fdt_mean"] = row.fdt;
          std::printf("%s\n", j.dump().c_str());
        }
      });
  return 0;
}

}  // namespace deltakit::cli
