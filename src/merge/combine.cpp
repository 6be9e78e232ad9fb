#include "src/merge/combine.h"

#include <cmath>
#include <cstdint>

namespace deltakit {

void combine_deltas(std::span<const float> base, const std::vector<std::span<const float>>& weighted,
                    std::span<const double> weights, const CombineOptions& o, std::span<float> out) {
  const size_t m = weighted.size();
  double all_weights = 0;
  for (double w : weights) all_weights += w;
  if (std::fabs(all_weights) < 1e-8) all_weights = 1;
#pragma omp parallel for schedule(static)
  for (int64_t ii = 0; ii < static_cast<int64_t>(base.size()); ++ii) {
    const size_t i = static_cast<size_t>(ii);
    double mixed = 0, divisor = 0;
    if (o.consensus == Consensus::None) {
      for (size_t k = 0; k < m; ++k) mixed += weighted[k][i];
      divisor = all_weights;
    } else {
      double vote = 0;
      for (size_t k = 0; k < m; ++k) {
        const float v = weighted[k][i];
        vote += o.consensus == Consensus::Sum ? v : (v > 0) - (v < 0);
      }
      const int majority = vote >= 0 ? 1 : -1;
      for (size_t k = 0; k < m; ++k) {
        const float v = weighted[k][i];
        if ((v > 0 ? 1 : v < 0 ? -1 : 0) != majority) continue;
        mixed += v;
        divisor += weights[k];
      }
      if (divisor == 0) divisor = 1;
    }
    if (o.normalize) mixed /= divisor;
    out[i] = static_cast<float>(static_cast<double>(base[i]) + o.lambda * mixed);
  }
}

const char* consensus_name(Consensus c) {
  return c == Consensus::Sum ? "sum" : c == Consensus::Count ? "count" : "none";
}

}  // namespace deltakit
