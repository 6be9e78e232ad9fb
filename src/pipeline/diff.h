// `deltakit diff`: per-tensor statistics of δ = fine-tune − base, the first look at a fine-tune.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deltakit {

struct TensorDiff {
  std::string name, dtype;
  std::vector<uint64_t> shape;
  uint64_t numel = 0;
  uint64_t unchanged = 0;   // elements whose bytes are identical
  uint64_t nonfinite = 0;   // elements where δ is NaN/Inf (excluded from the norms below)
  double l2 = 0;            // ‖δ‖₂
  double base_l2 = 0;       // ‖θ_base‖₂ (for ‖δ‖/‖θ‖)
  double max_abs = 0, mean_abs = 0;
  double base_mean_abs = 0; // mean|θ_base| (for mean|δ|/mean|θ|, the usual size of a fine-tune)
  bool numeric = true;      // false for non-float dtypes (only `unchanged` is meaningful)
};

struct DiffReport {
  std::vector<TensorDiff> tensors;
  // one row per tensor family: the name with its layer index taken out ("self_attn.q_proj.weight"),
  // in order of first appearance; numel, l2, base_l2, mean_abs, base_mean_abs, max_abs aggregated
  std::vector<TensorDiff> families;
  TensorDiff total;  // aggregated over all numeric tensors (name "TOTAL")
  uint64_t input_bytes = 0;
  double seconds = 0;
};

DiffReport run_diff(const std::string& base, const std::string& finetuned);

// "model.layers.3.mlp.up_proj.weight" -> "mlp.up_proj.weight"; names outside layers unchanged.
std::string tensor_family(const std::string& name);

// Statistics of one tensor pair (exposed for tests and benchmarks).
TensorDiff diff_tensor(const struct TensorView& base, const struct TensorView& ft);

}  // namespace deltakit
