#include "src/edits/riemann_sweep.h"

#include <cmath>
#include <filesystem>

#include "src/core/error.h"
#include "src/edits/delta_edits.h"
#include "src/eval/calibration.h"
#include "src/eval/divergence.h"
#include "src/eval/evaluate.h"
#include "src/eval/prompts.h"
#include "src/eval/skills.h"

namespace deltakit {

void riemann_sweep(const RiemannSweepOptions& o, const std::function<void(const RiemannSweepStart&)>& on_start,
                   const std::function<void(const RiemannEditRow&)>& on_row) {
  std::vector<DeltaEdit> edits;
  for (const auto& t : o.edits) edits.push_back(parse_delta_edit(t));
  for (const DeltaEdit& e : edits)  // before the held-out passes: a missing folder fails at once
    if (e.kind == "model" && !std::filesystem::exists(std::filesystem::path(e.path) / "config.json"))
      throw Error(ErrorCode::Io, e.path, "is not a model folder (no config.json) for edit model:path=" + e.path);
  const LlamaParams pre = load_llama(o.base), post = load_llama(o.finetuned);
  require_same_layout(pre, post, o.finetuned, "the base " + o.base);
  if (o.samples < 1 || o.seq_len < 2 || o.seq_len > static_cast<int64_t>(post.config().max_seq))
    throw Error(ErrorCode::Usage, "", "--samples must be >= 1 and --seq-len in [2, the model's context]");
  if (!o.task.empty() && !is_skill(o.task)) throw Error(ErrorCode::Usage, "", "unknown skill \"" + o.task + "\"");
  const BatchFn calibration = calibration_batches(o.calibration, post.config().vocab);
  std::vector<Batch> data;
  for (int64_t first = 0; first < o.samples; first += 8) {
    Batch b;
    b.B = std::min<int64_t>(8, o.samples - first), b.T = o.seq_len;
    calibration(b, first / 8);
    data.push_back(std::move(b));
  }
  std::vector<float> grad_post;
  RiemannSweepStart start;
  start.loss_post = loss_on_batches(post, data, &grad_post);
  start.loss_pre = loss_on_batches(pre, data);
  start.gain = start.loss_pre - start.loss_post;
  start.tolerance = o.tolerance * std::fabs(start.gain);
  DivergenceOptions dopt;
  dopt.new_tokens = o.new_tokens;
  ReferenceText reference;  // the fine-tune's continuations, generated once for every edit
  if (!o.prompts_from.empty())
    reference = reference_text(post, make_prompts(o.prompts_from, o.prompts, 16, post.config().vocab), dopt);
  start.accuracy = !o.task.empty();
  start.fdt = !reference.prompts.empty();
  on_start(start);
  for (const DeltaEdit& e : edits) {
    const std::vector<float> d = edit_direction(e, pre, post, &grad_post);
    RiemannEditRow row;
    row.edit = e.text();
    row.report = riemann_loss_change(post, start.loss_post, grad_post, d, data, o.C);
    const double delta = row.report.delta;
    row.verdict = std::fabs(delta) <= start.tolerance ? "competitive" : delta > 0 ? "decreased" : "improved";
    if (start.accuracy || start.fdt) {
      LlamaParams edited = post;
      for (size_t i = 0; i < d.size(); ++i) edited.data()[i] += d[i];
      if (start.accuracy) row.accuracy = evaluate_skill(edited, o.task, o.task_samples, kEvalStream).accuracy();
      if (start.fdt) row.fdt = divergent_tokens(post, reference, edited, dopt).fdt_mean;
    }
    on_row(row);
  }
}

}  // namespace deltakit
