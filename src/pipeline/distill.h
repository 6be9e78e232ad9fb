// BitDelta scale distillation (algorithms.md §2; Liu et al. 2024): with the signs of a bitdelta adapter
// fixed, fit its scales α to make the compressed model's logits match the fine-tune's,
//     α* = argmin E_x ‖z_fine(x) − z_bin(x; α)‖²
// over calibration sequences (src/eval/calibration.h), by Adam on α alone (the paper's method;
// the released code also lets the optimizer touch other parameters). Tensors coded by a single
// bitdelta stage with one level (per matrix, row or group scales), with or without cherries, are
// distilled; cherries keep their values, every other tensor stays what the adapter makes it.
// The loss reported is the mean over positions of Σ_vocab (z_bin − z_fine)², on held-out
// calibration batches, before and after. The output adapter is the input with only the
// `bitdelta.scales` datasets and the `rel_error` attributes rewritten (plus `bitdelta.distilled` = 1
// on those tensors and a `distillation` summary at the root); signs and cherries are copied as
// stored. Runs the model engine in fp32: for models the engine loads (src/model).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace deltakit {

struct DistillOptions {
  std::string base, finetuned, adapter, out;
  std::string calibration = "corpus";
  // paper defaults: 800 samples as 4 × 200 steps, length 128, AdamW lr 1e-4, cosine schedule
  int64_t steps = 200, batch = 4, seq_len = 128, eval_batches = 4;  // seq_len 0: 128 or the context if shorter
  double lr = 1e-4;
  bool overwrite = false;
};

struct DistillReport {
  uint64_t tensors = 0, scales = 0;
  double loss_before = 0, loss_after = 0;  // held-out
  std::vector<float> train_losses;
  std::map<std::string, double> rel_error;  // ‖δ − δ̂‖/‖δ‖ of each distilled tensor, after
  double seconds = 0;
  std::vector<std::string> warnings;
};

DistillReport distill_scales(const DistillOptions& o);

}  // namespace deltakit
