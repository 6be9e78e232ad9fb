// Merge methods that pick, per entry or per row, how much of each model to take
// (algorithms.md §8; each follows mergekit's implementation of the same name):
//
// model_stock (Jang et al. 2024, arXiv:2403.19522): with offsets o_i = θ_i − θ_b of N ≥ 2
//   models and cos = the mean over pairs of o_i·o_j / max(‖o_i‖‖o_j‖, 1e-6), clamped to [−1, 1],
//   t = N·cos / (1 + (N − 1)·cos) and θ = t·mean(θ_i) + (1 − t)·θ_b — over the whole tensor, or
//   per row (filter_wise; a 1-D tensor is one row).
// sce (Wan et al. 2024, arXiv:2408.07990): task vectors τ_i; with select_topk < 1 only the
//   floor(select_topk · #{var ≠ 0}) entries of largest variance across the models are kept (ties
//   to the lower index); entries disagreeing with the sign of Σ_i τ_i are erased; each model is
//   weighted by mean(τ_i²) / Σ_j mean(τ_j²) (equal weights when that sum is below 1e-6); the
//   merged τ is Σ w_i m_i τ_i / max(Σ w_i m_i, 1e-6) over the surviving entries.
// nearswap: θ = w·θ_1 + (1 − w)·θ_b with w = clamp(t / max(|θ_1 − θ_b|, 1e-6), 0, 1): entries
//   closer than t to the base take the model's value.
// arcee_fusion: importance |θ_1 − θ_b| · KL(softmax(θ_1 row) ‖ softmax(θ_b row)) (each +1e-8),
//   and θ_b + δ on entries whose importance is at least median + 1.5·IQR (quantiles at the
//   floor((n − 1)·q)-th of the sorted scores; mergekit samples 10⁶ of them above that size,
//   deltakit sorts them all).
#pragma once

#include <cstdint>
#include <span>

namespace deltakit {

void model_stock(std::span<const float> base, std::span<const std::span<float>> models, uint64_t cols, bool filter_wise,
                 std::span<float> out);
void sce_merge(std::span<const float> base, std::span<const std::span<float>> models, double select_topk,
               std::span<float> out);
void nearswap(std::span<const float> base, std::span<const float> model, double t, std::span<float> out);
void arcee_fusion(std::span<const float> base, std::span<const float> model, uint64_t cols, std::span<float> out);

}  // namespace deltakit
