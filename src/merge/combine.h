// Mixing task vectors (algorithms.md §8, mergekit's generalized task arithmetic): given the
// weighted deltas wd_i = w_i·δ_i (already sparsified) and the weights w_i,
//   consensus sum    majority = sign(Σ_i wd_i) (0 counts as +), mask_i = sign(wd_i) == majority
//   consensus count  majority = sign(Σ_i sign(wd_i)) (0 counts as +)
//   (a zero wd_i has sign 0 and is never in the mask)
//   mixed = Σ wd_i·mask_i, divisor = Σ w_i·mask_i (0 -> 1)       with consensus
//   mixed = Σ wd_i,        divisor = Σ w_i        (|·|<1e-8 -> 1) without
//   θ = θ_b + λ · (normalize ? mixed / divisor : mixed)
// in fp32, element by element.
#pragma once

#include <span>
#include <vector>

namespace deltakit {

enum class Consensus { None, Sum, Count };

struct CombineOptions {
  Consensus consensus = Consensus::None;
  bool normalize = false;
  double lambda = 1.0;
};

// base: θ_b; weighted: one span per model (wd_i, n each); weights: w_i; out: θ (n).
void combine_deltas(std::span<const float> base, const std::vector<std::span<const float>>& weighted,
                    std::span<const double> weights, const CombineOptions& o, std::span<float> out);

// Plain task arithmetic (no consensus, nothing sparsified) from the models' own values θ_j, in
// one pass: θ = θ_b + λ·Σ_j w_j·(θ_j − θ_b) (over Σw where normalize), each element's operations
// those of weighing θ_j − θ_b in place and combine_deltas (the difference and its weighting in
// float, the sum in double over the models in order), so the bits are the same.
void combine_task_arithmetic(std::span<const float> base, const std::vector<std::span<const float>>& models,
                             std::span<const double> weights, double lambda, bool normalize, std::span<float> out);

const char* consensus_name(Consensus c);

}  // namespace deltakit
