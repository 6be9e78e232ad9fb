// One entry of combine_deltas (src/merge/combine.h) in a DK_HD function, in a light header nvcc
// compiles: a GPU thread (src/gpu) runs it per entry, and a test runs it in a host loop against
// combine_deltas' vectorized blocks, so the two cannot drift apart. Sums run over the models in
// order, in double, a multiply then an add.
#pragma once

#include <cstdint>

#include "src/core/host_device.h"

namespace deltakit {

// What combine_deltas mixes with; all_weights is Σ w_i (1 where |Σ w_i| < 1e-8).
struct CombineEntryOptions {
  int consensus = 0;  // 0 none, 1 sum, 2 count (Consensus's order)
  bool normalize = false;
  double lambda = 1.0, all_weights = 1.0;
};

// θ_j from base_j and the weighted task vectors wd_k = weighted[k·stride + j], k < m.
DK_HD inline float combine_entry(const CombineEntryOptions& o, float base, const float* weighted, uint64_t stride,
                                 unsigned m, const double* weights, uint64_t j) {
  double mixed = 0.0, divisor = o.all_weights;
  if (o.consensus == 0) {
    for (unsigned k = 0; k < m; ++k) mixed += weighted[k * stride + j];
  } else {
    double vote = 0.0;
    for (unsigned k = 0; k < m; ++k) {
      const float v = weighted[k * stride + j];
      vote += o.consensus == 1 ? static_cast<double>(v) : static_cast<double>((v > 0.0f) - (v < 0.0f));
    }
    const double majority = vote >= 0 ? 1.0 : -1.0;  // a tie counts as +
    divisor = 0.0;
    for (unsigned k = 0; k < m; ++k) {
      const double x = weighted[k * stride + j];
      const bool agrees = x * majority > 0.0;  // so a zero never does
      mixed += agrees ? x : 0.0;
      divisor += agrees ? weights[k] : 0.0;
    }
    divisor = divisor == 0 ? 1.0 : divisor;
  }
  return static_cast<float>(static_cast<double>(base) + o.lambda * (o.normalize ? mixed / divisor : mixed));
}

}  // namespace deltakit
