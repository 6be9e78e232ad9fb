#include "src/core/magnitude_cut.h"

#include <vector>

namespace deltakit {

namespace {
// Highest bin b with count(bins above b) < k <= count(bins ≥ b); `above` gains the bins above.
uint32_t bin_holding(const std::vector<uint64_t>& hist, uint64_t k, uint64_t& above) {
  for (uint32_t b = static_cast<uint32_t>(hist.size()); b-- > 0;) {
    if (above + hist[b] >= k) return b;
    above += hist[b];
  }
  return 0;
}
}  // namespace

MagnitudeCut magnitude_cut(std::span<const float> x, uint64_t k, std::span<const uint8_t> skip) {
  MagnitudeCut cut;
  if (k == 0) return cut;
  const uint64_t n = x.size();
  const bool skipping = !skip.empty();
  std::vector<uint64_t> hist(1u << 16, 0);
  uint64_t candidates = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (skipping && skip[i]) continue;
    ++hist[magnitude_bits(x[i]) >> 16];
    ++candidates;
  }
  if (candidates == 0) return cut;
  if (k > candidates) k = candidates;
  uint64_t above = 0;
  const uint32_t hi = bin_holding(hist, k, above);
  std::fill(hist.begin(), hist.end(), 0);
  for (uint64_t i = 0; i < n; ++i) {
    if (skipping && skip[i]) continue;
    const uint32_t b = magnitude_bits(x[i]);
    if ((b >> 16) == hi) ++hist[b & 0xffffu];
  }
  const uint32_t lo = bin_holding(hist, k, above);
  cut.bits = (hi << 16) | lo;
  cut.ties = k - above;
  return cut;
}

}  // namespace deltakit
