// AdamW with linear warm-up and cosine decay, global-norm gradient clipping, weight decay on
// matrices only (not norms or biases). Deterministic: batches come from (seed, step) and every
// kernel splits work independently of the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "src/model/batch.h"
#include "src/model/llama_params.h"

namespace deltakit {

struct TrainOptions {
  int64_t steps = 1000, batch = 16, seq = 64, warmup = 50;
  double lr = 3e-3, min_lr_ratio = 0.1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, clip = 1.0;
  uint64_t seed = 1;
  // skill fine-tuning: this share of each batch's rows replays the pre-training corpus, so the
  // fine-tune keeps the base's other behaviour and learns the skill as tied to its own prompt
  double replay = 0.0;
};

double lr_at(const TrainOptions& o, int64_t step);  // warm-up, then cosine down to min_lr_ratio·lr

struct TrainStep {
  int64_t step;
  float loss;
  double lr, grad_norm, seconds;
};

using BatchFn = std::function<void(Batch& b, int64_t step)>;
using StepFn = std::function<void(const TrainStep&)>;

// Trains `p` in place; on_step is called after every step. Returns the per-step losses.
std::vector<float> train(LlamaParams& p, const TrainOptions& o, const BatchFn& batch, const StepFn& on_step);

}  // namespace deltakit
