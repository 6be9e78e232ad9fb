#include <algorithm>
#include <cmath>

#include "src/codec/score_cut.h"
#include "src/codec/sparse.h"

namespace deltakit {

uint64_t topk_count(double density, uint64_t n) {
  return std::min<uint64_t>(n, static_cast<uint64_t>(std::floor(density * static_cast<double>(n))));
}

SparseSelection topk_select(const TopkParams& prm, std::span<const float> delta, std::span<const uint8_t> skip) {
  const uint64_t n = delta.size();
  ScoreCut cut = magnitude_cut(delta, topk_count(prm.density, n), skip);
  SparseSelection s;
  for (uint64_t i = 0; i < n; ++i) {
    if ((!skip.empty() && skip[i]) || !cut.keep(magnitude_key(delta[i]))) continue;
    s.positions.push_back(i);
    s.values.push_back(delta[i]);
  }
  return s;
}

}  // namespace deltakit
