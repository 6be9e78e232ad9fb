#include "src/codec/score_cut.h"

#include <algorithm>

namespace deltakit {

std::pair<uint32_t, uint64_t> find_bucket(const std::vector<uint64_t>& hist, uint64_t need) {
  uint64_t above = 0;
  for (size_t b = hist.size(); b-- > 0;) {
    if (above + hist[b] >= need) return {static_cast<uint32_t>(b), above};
    above += hist[b];
  }
  return {0, above};  // unreachable when need <= total
}

ScoreCut magnitude_cut(std::span<const float> x, uint64_t k, std::span<const uint8_t> skip) {
  ScoreCut cut;
  if (k == 0) return cut;
  const bool skipping = !skip.empty();
  std::vector<uint64_t> hist(kScoreBuckets, 0);
  uint64_t candidates = 0;
  for (uint64_t i = 0; i < x.size(); ++i) {
    if (skipping && skip[i]) continue;
    ++hist[magnitude_key(x[i]) >> 16];
    ++candidates;
  }
  if (candidates == 0) return cut;
  k = std::min(k, candidates);
  const auto [hi, above_bucket] = find_bucket(hist, k);
  std::fill(hist.begin(), hist.end(), 0);
  for (uint64_t i = 0; i < x.size(); ++i) {
    if (skipping && skip[i]) continue;
    const uint32_t key = magnitude_key(x[i]);
    if ((key >> 16) == hi) ++hist[key & 0xffffu];
  }
  const auto [lo, above_value] = find_bucket(hist, k - above_bucket);
  cut.threshold = (hi << 16) | lo;
  cut.ties_keep = k - above_bucket - above_value;
  return cut;
}

std::vector<uint64_t> select_by_cut(std::span<const float> scores, const ScoreCut& cut) {
  std::vector<uint64_t> kept;
  ScoreCut c = cut;
  for (uint64_t i = 0; i < scores.size(); ++i)
    if (c.keep(score_key(scores[i]))) kept.push_back(i);
  return kept;
}

}  // namespace deltakit
