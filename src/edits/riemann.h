// The loss change an edit W_post → W_post + D makes (Tang et al. 2024, eq. 1; algorithms.md §4), measured
// and estimated on fixed held-out batches, L the mean next-token loss over all their counted
// positions:
//   ΔL   = L(W_post + D) − L(W_post)
//   ΔL_C = (1/C) Σ_{c=0}^{C−1} ⟨∇L(W_post + (c/C)·D), D⟩   (the left Riemann sum of ∫₀¹ ⟨∇L, D⟩ dt)
// Gradients come from the engine's backward; each distinct point c/C is evaluated once.
#pragma once

#include <cstdint>
#include <vector>

#include "src/model/batch.h"
#include "src/model/llama_params.h"

namespace deltakit {

// L at w; with `grad`, also ∇L (overwritten, the parameters' layout).
double loss_on_batches(const LlamaParams& w, const std::vector<Batch>& data, std::vector<float>* grad = nullptr);

struct RiemannReport {
  double loss_post = 0, loss_edit = 0, delta = 0;  // L(W_post), L(W_post + D), their difference
  std::vector<int64_t> C;
  std::vector<double> estimate;  // ΔL_C per C
};

RiemannReport riemann_loss_change(const LlamaParams& post, const std::vector<float>& d, const std::vector<Batch>& data,
                                  const std::vector<int64_t>& C);
// The same with L(W_post) and ∇L(W_post) already known (loss_on_batches on the same data): a
// sweep of edits on one model computes them once.
RiemannReport riemann_loss_change(const LlamaParams& post, double loss_post, const std::vector<float>& grad_post,
                                  const std::vector<float>& d, const std::vector<Batch>& data,
                                  const std::vector<int64_t>& C);

}  // namespace deltakit
