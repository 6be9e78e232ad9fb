#include "src/model/trainer.h"

#include <chrono>
#include <cmath>

#include "src/model/llama_model.h"

namespace deltakit {

double lr_at(const TrainOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
  const double progress = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  const double cosine = 0.5 * (1.0 + std::cos(3.141592653589793 * progress));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

std::vector<float> train(LlamaParams& p, const TrainOptions& o, const BatchFn& make_batch, const StepFn& on_step) {
  const auto t0 = std::chrono::steady_clock::now();
  LlamaModel model(p.config());
  const size_t n = p.data().size();
  std::vector<float> grads(n), m(n, 0.0f), v(n, 0.0f), decay(n, 0.0f);
  for (const auto& s : p.slices())
    if (s.shape.size() == 2) std::fill(decay.begin() + s.offset, decay.begin() + s.offset + s.numel, 1.0f);
  std::vector<float> losses;
  Batch b;
  b.B = o.batch, b.T = o.seq;
  for (int64_t step = 0; step < o.steps; ++step) {
    make_batch(b, step);
    std::fill(grads.begin(), grads.end(), 0.0f);
    const ModelWeights w = p.bind();
    const float loss = model.forward(w, b.tokens.data(), b.targets.data(), b.B, b.T);
    model.backward(w, p.bind(grads.data()));
    double sq = 0;
    for (float g : grads) sq += static_cast<double>(g) * g;
    const double norm = std::sqrt(sq);
    const float clip = norm > o.clip ? static_cast<float>(o.clip / norm) : 1.0f;
    const double lr = lr_at(o, step);
    const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(step + 1));
    const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(step + 1));
    const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
    const float step_size = static_cast<float>(lr / bc1), inv_bc2 = static_cast<float>(1.0 / bc2);
    const float eps = static_cast<float>(o.eps), wd = static_cast<float>(lr * o.weight_decay);
    float* x = p.data().data();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      const float g = grads[i] * clip;
      m[i] = b1 * m[i] + (1.0f - b1) * g;
      v[i] = b2 * v[i] + (1.0f - b2) * g * g;
      x[i] -= wd * decay[i] * x[i];  // decoupled weight decay (AdamW)
      x[i] -= step_size * m[i] / (std::sqrt(v[i] * inv_bc2) + eps);
    }
    losses.push_back(loss);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (on_step) on_step({step, loss, lr, norm, secs});
  }
  return losses;
}

}  // namespace deltakit
