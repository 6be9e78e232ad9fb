#include "src/codec/score_cut.h"

#include <algorithm>
#include <tuple>
#include <utility>

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

void MagnitudeCutBuilder::flush() {
  if (in_lanes_ == 0) return;
  for (size_t b = 0; b < kScoreBuckets; ++b)
    for (size_t l = 0; l < kLanes; ++l) hist_[b] += std::exchange(lanes_[b * kLanes + l], 0);
  in_lanes_ = 0;
}

void MagnitudeCutBuilder::add(std::span<const float> x, std::span<const uint8_t> skip) {
  const uint64_t n = x.size();
  const float* v = x.data();
  // the bucket of an entry's key: pass 0 its high 16 bits; pass 1 its low 16 bits where the high
  // ones are the cut's bucket (else none, -1). Locals, not members: the counts' stores could
  // alias a member, which the loop would then load again per entry.
  const bool first = pass_ == 0;
  const uint32_t hi = hi_;
  const auto bucket = [first, hi](float value) -> int64_t {
    const uint32_t key = magnitude_key(value);
    if (first) return key >> 16;
    return (key >> 16) == hi ? static_cast<int64_t>(key & 0xffffu) : -1;
  };
  if (first)
    candidates_ += skip.empty() ? n : static_cast<uint64_t>(std::count(skip.begin(), skip.begin() + n, uint8_t{0}));
  uint64_t* hist = hist_.data();
  if (!skip.empty() || n < (uint64_t{1} << 14)) {  // a mask, or too few entries to pay for the lanes
    for (uint64_t i = 0; i < n; ++i) {
      if (!skip.empty() && skip[i]) continue;
      if (const int64_t b = bucket(v[i]); b >= 0) ++hist[b];
    }
    return;
  }
  if (lanes_.empty()) lanes_.assign(kScoreBuckets * kLanes, 0);
  if (in_lanes_ + n >= (uint64_t{1} << 31)) flush();  // a lane holds about a quarter of it
  in_lanes_ += n;
  uint32_t* lanes = lanes_.data();
  const uint64_t whole = n / kLanes * kLanes;
  if (first) {
    for (uint64_t i = 0; i < whole; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l) ++lanes[(magnitude_key(v[i + l]) >> 16) * kLanes + l];
  } else {
    for (uint64_t i = 0; i < whole; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l)
        if (const int64_t b = bucket(v[i + l]); b >= 0) ++lanes[static_cast<uint64_t>(b) * kLanes + l];
  }
  for (uint64_t i = whole; i < n; ++i)
    if (const int64_t b = bucket(v[i]); b >= 0) ++hist[b];
}

void MagnitudeCutBuilder::next() {
  flush();
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
