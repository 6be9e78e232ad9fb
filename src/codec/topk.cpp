#include <algorithm>
#include <cmath>
#include <numeric>

#include "src/codec/sparse.h"

namespace deltakit {

uint64_t topk_count(double density, uint64_t n) {
  return std::min<uint64_t>(n, static_cast<uint64_t>(std::floor(density * static_cast<double>(n))));
}

SparseSelection topk_select(const TopkParams& prm, std::span<const float> delta, std::span<const uint8_t> skip) {
  const uint64_t n = delta.size();
  std::vector<uint64_t> cand;
  cand.reserve(n);
  for (uint64_t i = 0; i < n; ++i)
    if (skip.empty() || !skip[i]) cand.push_back(i);
  const uint64_t k = std::min<uint64_t>(topk_count(prm.density, n), cand.size());
  auto larger = [&](uint64_t a, uint64_t b) {
    float x = std::fabs(delta[a]), y = std::fabs(delta[b]);
    return x != y ? x > y : a < b;
  };
  if (k < cand.size()) std::nth_element(cand.begin(), cand.begin() + k, cand.end(), larger);
  cand.resize(k);
  std::sort(cand.begin(), cand.end());
  SparseSelection s;
  s.values.reserve(k);
  for (uint64_t i : cand) s.values.push_back(delta[i]);
  s.positions = std::move(cand);
  return s;
}

}  // namespace deltakit
