#include "src/codec/score_cut.h"

#include <algorithm>
#include <tuple>

namespace deltakit {

std::pair<uint32_t, uint64_t> find_bucket(const std::vector<uint64_t>& hist, uint64_t need) {
  uint64_t above = 0;
  for (size_t b = hist.size(); b-- > 0;) {
    if (above + hist[b] >= need) return {static_cast<uint32_t>(b), above};
    above += hist[b];
  }
  return {0, above};  // unreachable when need <= total
}

MagnitudeCutBuilder::MagnitudeCutBuilder(uint64_t k) : k_(k), done_(k == 0), hist_(k ? kScoreBuckets : 0, 0) {}

void MagnitudeCutBuilder::add(std::span<const float> x, std::span<const uint8_t> skip) {
  const bool skipping = !skip.empty();
  if (pass_ == 0) {
    for (uint64_t i = 0; i < x.size(); ++i) {
      if (skipping && skip[i]) continue;
      ++hist_[magnitude_key(x[i]) >> 16];
      ++candidates_;
    }
    return;
  }
  for (uint64_t i = 0; i < x.size(); ++i) {
    if (skipping && skip[i]) continue;
    const uint32_t key = magnitude_key(x[i]);
    if ((key >> 16) == hi_) ++hist_[key & 0xffffu];
  }
}

void MagnitudeCutBuilder::next() {
  if (pass_ == 0) {
    pass_ = 1;
    if (candidates_ == 0) {
      done_ = true;
      return;
    }
    k_ = std::min(k_, candidates_);
    std::tie(hi_, above_bucket_) = find_bucket(hist_, k_);
    std::fill(hist_.begin(), hist_.end(), 0);
    return;
  }
  const auto [lo, above_value] = find_bucket(hist_, k_ - above_bucket_);
  cut_.threshold = (hi_ << 16) | lo;
  cut_.ties_keep = k_ - above_bucket_ - above_value;
  done_ = true;
}

ScoreCut magnitude_cut(std::span<const float> x, uint64_t k, std::span<const uint8_t> skip) {
  MagnitudeCutBuilder b(k);
  while (!b.done()) {
    b.add(x, skip);
    b.next();
  }
  return b.cut();
}

std::vector<uint64_t> select_by_cut(std::span<const float> scores, const ScoreCut& cut) {
  std::vector<uint64_t> kept;
  ScoreCut c = cut;
  for_each_kept(scores, c, [&](uint64_t i) { kept.push_back(i); });
  return kept;
}

}  // namespace deltakit
