// deltakit riemann: the loss change of delta-parameter edits and its Riemann-sum estimates
// (algorithms.md §4; src/edits/delta_edits.h, src/edits/riemann.h), with accuracy and divergent tokens of
// each edited model, one row per edit and one JSON object per edit with --json.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/cli_common.h"
#include "src/core/error.h"
#include "src/eval/calibration.h"
#include "src/edits/delta_edits.h"
#include "src/eval/divergence.h"
#include "src/eval/evaluate.h"
#include "src/model/kernels.h"
#include "src/eval/prompts.h"
#include "src/edits/riemann.h"
#include "src/eval/skills.h"

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
  std::vector<DeltaEdit> edits;
  for (const auto& t : vm["edit"].as<std::vector<std::string>>()) edits.push_back(parse_delta_edit(t));
  for (const DeltaEdit& e : edits)  // before the held-out passes: a missing folder fails at once
    if (e.kind == "model" && !std::filesystem::exists(std::filesystem::path(e.path) / "config.json"))
      throw Error(ErrorCode::Io, e.path, "is not a model folder (no config.json) for edit model:path=" + e.path);
  const std::string pre_dir = vm["base"].as<std::string>(), post_dir = vm["finetuned"].as<std::string>();
  const LlamaParams pre = load_llama(pre_dir), post = load_llama(post_dir);
  require_same_layout(pre, post, post_dir, "the base " + pre_dir);
  const int64_t samples = vm["samples"].as<int64_t>(), seq = vm["seq-len"].as<int64_t>();
  if (samples < 1 || seq < 2 || seq > static_cast<int64_t>(post.config().max_seq))
    throw Error(ErrorCode::Usage, "", "--samples must be >= 1 and --seq-len in [2, the model's context]");
  const BatchFn calibration = calibration_batches(vm["calibration"].as<std::string>(), post.config().vocab);
  std::vector<Batch> data;
  for (int64_t first = 0; first < samples; first += 8) {
    Batch b;
    b.B = std::min<int64_t>(8, samples - first), b.T = seq;
    calibration(b, first / 8);
    data.push_back(std::move(b));
  }
  std::vector<float> grad_post;
  const double loss_post = loss_on_batches(post, data, &grad_post), loss_pre = loss_on_batches(pre, data);
  const double gain = loss_pre - loss_post, tolerance = vm["tolerance"].as<double>() * std::fabs(gain);
  DivergenceOptions dopt;
  dopt.new_tokens = vm["new-tokens"].as<int64_t>();
  ReferenceText reference;  // the fine-tune's continuations, generated once for every edit
  if (vm.count("prompts-from"))
    reference = reference_text(
        post, make_prompts(vm["prompts-from"].as<std::string>(), vm["prompts"].as<int64_t>(), 16, post.config().vocab),
        dopt);
  const bool fdt_wanted = !reference.prompts.empty();
  const std::string task = vm.count("task") ? vm["task"].as<std::string>() : "";
  if (!task.empty() && !is_skill(task)) throw Error(ErrorCode::Usage, "", "unknown skill \"" + task + "\"");
  const bool json = vm["json"].as<bool>();
  std::printf("L(W_pre) %.5f  L(W_post) %.5f  fine-tune gain %.5f  competitive: |dL| <= %.5f\n", loss_pre, loss_post,
              gain, tolerance);
  std::printf("%-30s %11s", "edit", "dL");
  for (int64_t c : C) std::printf("  est C=%-4lld", static_cast<long long>(c));
  std::printf(" %-12s%s%s\n", "class", task.empty() ? "" : "  accuracy", fdt_wanted ? "    FDT" : "");
  for (const DeltaEdit& e : edits) {
    const std::vector<float> d = edit_direction(e, pre, post, &grad_post);
    const RiemannReport r = riemann_loss_change(post, loss_post, grad_post, d, data, C);
    const std::string cls = std::fabs(r.delta) <= tolerance ? "competitive" : r.delta > 0 ? "decreased" : "improved";
    double accuracy = -1, fdt = -1;
    if (!task.empty() || fdt_wanted) {
      LlamaParams edited = post;
      for (size_t i = 0; i < d.size(); ++i) edited.data()[i] += d[i];
      if (!task.empty())
        accuracy = evaluate_skill(edited, task, vm["samples-task"].as<int64_t>(), kEvalStream).accuracy();
      if (fdt_wanted) fdt = divergent_tokens(post, reference, edited, dopt).fdt_mean;
    }
    std::printf("%-30s %11.5f", e.text().c_str(), r.delta);
    for (double v : r.estimate) std::printf("  %11.5f", v);
    std::printf(" %-12s", cls.c_str());
    if (accuracy >= 0) std::printf("  %7.1f%%", 100 * accuracy);
    if (fdt >= 0) std::printf("  %5.2f", fdt);
    std::printf("\n");
    if (json) {
      nlohmann::ordered_json j{{"edit", e.text()},         {"loss_pre", loss_pre},  {"loss_post", loss_post},
                               {"loss_edit", r.loss_edit}, {"delta_loss", r.delta}, {"C", r.C},
                               {"estimate", r.estimate},   {"class", cls}};
      if (accuracy >= 0) j["accuracy"] = accuracy;
      if (fdt >= 0) j["fdt_mean"] = fdt;
      std::printf("%s\n", j.dump().c_str());
    }
  }
  return 0;
}

}  // namespace deltakit::cli
