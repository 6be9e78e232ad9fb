#include "src/codec/score_cut.h"

#ifdef __AVX512F__
// GCC 12 warns inside its own AVX-512 headers (their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstring>
#include <memory>
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

namespace {
// Tables lent from builder to builder on a thread, every count zero (a merge holds a builder per
// model at once, so a thread keeps several).
std::vector<std::unique_ptr<MagnitudeCutBuilder::Tables>>& spare_tables() {
  thread_local std::vector<std::unique_ptr<MagnitudeCutBuilder::Tables>> spares;
  return spares;
}

#ifdef __AVX512F__
// magnitude_key(v[j]) >> 16 for 16 entries: |x|'s bits, NaN as 0, the high half
inline __m512i buckets16(const float* v) {
  const __m512i k = _mm512_and_si512(_mm512_loadu_si512(v), _mm512_set1_epi32(0x7fffffff));
  return _mm512_srli_epi32(_mm512_maskz_mov_epi32(_mm512_cmple_epu32_mask(k, _mm512_set1_epi32(0x7f800000)), k), 16);
}
#endif

// Pass 0's lane index of m entries (m a multiple of 16): the bucket (the magnitude key's high
// 16 bits) times kLanes plus the lane (the entry's index mod kLanes); lo and top take the
// buckets' min and max. Written with AVX-512 where there is one (GCC made the key's NaN test a
// branch per entry), the same arithmetic as magnitude_key otherwise.
void lane_indices(const float* v, uint64_t m, uint32_t* at, uint32_t& lo, uint32_t& top) {
  constexpr uint32_t kLanes = MagnitudeCutBuilder::kLanes;
  static_assert(kLanes == 4, "the lane pattern and the shift below");
#ifdef __AVX512F__
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
  __m512i vmin = _mm512_set1_epi32(-1), vmax = _mm512_setzero_si512();
  for (uint64_t j = 0; j < m; j += 16) {
    const __m512i b = buckets16(v + j);
    vmin = _mm512_min_epu32(vmin, b), vmax = _mm512_max_epu32(vmax, b);
    _mm512_storeu_si512(at + j, _mm512_add_epi32(_mm512_slli_epi32(b, 2), lane));
  }
  lo = std::min(lo, _mm512_reduce_min_epu32(vmin)), top = std::max(top, _mm512_reduce_max_epu32(vmax));
#else
  for (uint64_t j = 0; j < m; ++j) {
    const uint32_t b = magnitude_key(v[j]) >> 16;
    lo = std::min(lo, b), top = std::max(top, b);
    at[j] = b * kLanes + static_cast<uint32_t>(j % kLanes);
  }
#endif
}

// Which of 64 entries (bit j: entry j) have a magnitude key whose high 16 bits are `hi`.
uint64_t in_bucket(const float* v, uint32_t hi) {
  uint64_t mask = 0;
#ifdef __AVX512F__
  const __m512i want = _mm512_set1_epi32(static_cast<int>(hi));
  for (int j = 0; j < 64; j += 16) mask |= static_cast<uint64_t>(_mm512_cmpeq_epu32_mask(buckets16(v + j), want)) << j;
#else
  for (int j = 0; j < 64; ++j) mask |= static_cast<uint64_t>((magnitude_key(v[j]) >> 16) == hi) << j;
#endif
  return mask;
}

MagnitudeCutBuilder::Tables* take_tables() {
  auto& spares = spare_tables();
  if (spares.empty()) {
    auto* t = new MagnitudeCutBuilder::Tables;  // zeroed once, when first made
    std::memset(t, 0, sizeof(*t));
    return t;
  }
  MagnitudeCutBuilder::Tables* t = spares.back().release();
  spares.pop_back();
  return t;
}
}  // namespace

MagnitudeCutBuilder::MagnitudeCutBuilder(uint64_t k) : k_(k), done_(k == 0) {}

MagnitudeCutBuilder::MagnitudeCutBuilder(MagnitudeCutBuilder&& o) noexcept
    : k_(o.k_),
      done_(o.done_),
      pass_(o.pass_),
      t_(std::exchange(o.t_, nullptr)),
      lo_(o.lo_),
      top_(o.top_),
      in_lanes_(o.in_lanes_),
      candidates_(o.candidates_),
      above_bucket_(o.above_bucket_),
      hi_(o.hi_),
      cut_(o.cut_) {}

MagnitudeCutBuilder::~MagnitudeCutBuilder() {
  if (!t_) return;
  flush();
  clear_hist();
  spare_tables().emplace_back(t_);
}

void MagnitudeCutBuilder::flush() {
  if (in_lanes_ == 0) return;
  for (size_t b = lo_; b <= top_; ++b)
    for (size_t l = 0; l < kLanes; ++l) t_->hist[b] += std::exchange(t_->lanes[b * kLanes + l], 0);
  in_lanes_ = 0;
}

void MagnitudeCutBuilder::clear_hist() {
  if (lo_ <= top_) std::fill(t_->hist + lo_, t_->hist + top_ + 1, 0);
  lo_ = UINT32_MAX, top_ = 0;
}

std::pair<uint32_t, uint64_t> MagnitudeCutBuilder::find(uint64_t need) const {
  // find_bucket's answer: outside [lo_, top_] every count is zero (need ≥ 1 here)
  uint64_t above = 0;
  for (uint32_t b = top_ + 1; b-- > lo_;) {
    if (above + t_->hist[b] >= need) return {b, above};
    above += t_->hist[b];
  }
  return {0, above};
}

void MagnitudeCutBuilder::add(std::span<const float> x, std::span<const uint8_t> skip) {
  if (done_) return;
  if (!t_) t_ = take_tables();
  const uint64_t n = x.size();
  const float* v = x.data();
  uint64_t* hist = t_->hist;
  // Locals, not members, in the loops: the counts' stores could alias a member, which the loop
  // would then load again per entry.
  uint32_t lo = lo_, top = top_;
  const uint32_t hi = hi_;
  const auto count = [&](uint32_t b) {
    ++hist[b];
    lo = std::min(lo, b), top = std::max(top, b);
  };
  if (pass_ == 0) {
    candidates_ += skip.empty() ? n : static_cast<uint64_t>(std::count(skip.begin(), skip.begin() + n, uint8_t{0}));
    uint64_t i = 0;
    if (skip.empty() && n >= (uint64_t{1} << 14)) {       // too few entries do not pay for the lanes
      if (in_lanes_ + n >= (uint64_t{1} << 31)) flush();  // a lane holds about a quarter of it
      in_lanes_ += n;
      uint32_t* lanes = t_->lanes;
      // a group's lane indices first (with the range's min and max), then the increments alone:
      // the increments are the loop's whole cost
      constexpr uint64_t kGroup = 256;
      alignas(64) uint32_t at[kGroup];
      for (; i + kGroup <= n; i += kGroup) {
        lane_indices(v + i, kGroup, at, lo, top);
        for (uint64_t j = 0; j < kGroup; ++j) ++lanes[at[j]];
      }
    }
    for (; i < n; ++i)
      if (skip.empty() || !skip[i]) count(magnitude_key(v[i]) >> 16);
  } else {
    // the entries of the cut's bucket, about one in a hundred: 64 at a time as a mask, and only
    // those entries visited
    uint64_t i = 0;
    if (skip.empty())
      for (; i + 64 <= n; i += 64)
        for (uint64_t m = in_bucket(v + i, hi); m; m &= m - 1)
          count(magnitude_key(v[i + static_cast<uint64_t>(__builtin_ctzll(m))]) & 0xffffu);
    for (; i < n; ++i)
      if (skip.empty() || !skip[i])
        if (const uint32_t key = magnitude_key(v[i]); (key >> 16) == hi) count(key & 0xffffu);
  }
  lo_ = lo, top_ = top;
}

void MagnitudeCutBuilder::next() {
  if (done_) return;
  if (!t_) t_ = take_tables();  // a pass over no blocks
  flush();
  if (pass_ == 0) {
    pass_ = 1;
    if (candidates_ == 0) {
      done_ = true;
      return;
    }
    k_ = std::min(k_, candidates_);
    std::tie(hi_, above_bucket_) = find(k_);
    clear_hist();
    return;
  }
  const auto [lo, above_value] = find(k_ - above_bucket_);
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
