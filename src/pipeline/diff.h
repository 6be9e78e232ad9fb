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
  bool numeric = true;      // false for non-float dtypes (only `unchanged` is meaningful)
};

struct DiffReport {
  std::vector<TensorDiff> tensors;
  TensorDiff total;  // aggregated over all numeric tensors (name "TOTAL")
  uint64_t input_bytes = 0;
  double seconds = 0;
};

DiffReport run_diff(const std::string& base, const std::string& finetuned);

// Statistics of one tensor pair (exposed for tests and benchmarks).
TensorDiff diff_tensor(const struct TensorView& base, const struct TensorView& ft);

}  // namespace deltakit
