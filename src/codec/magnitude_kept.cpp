#include "src/codec/magnitude_kept.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <algorithm>

#include "src/codec/score_cut.h"

namespace deltakit {

namespace {
// The entries of delta[0, m) whose magnitude bits reach `floor`, appended at pos/val in order;
// returns how many. pos and val hold m + 16.
uint64_t keep_magnitudes(const float* delta, uint32_t floor, uint32_t first, uint64_t m, uint32_t* pos, float* val) {
  uint64_t k = 0, j = 0;
#ifdef __AVX512F__
  // 64 entries at a time: their compares as one 64-bit mask (four vector compares), then only
  // the kept ones visited, by their bits. Past the stream's first block a few percent are kept,
  // so this costs about the compares; a branch per entry, or a compress per 16, costs far more.
  const __m512i fl = _mm512_set1_epi32(static_cast<int>(floor));
  const __m512i abs_mask = _mm512_set1_epi32(0x7fffffff);
  const auto at_least = [&](uint64_t i) -> uint64_t {
    const __m512i bits = _mm512_and_si512(_mm512_loadu_si512(delta + i), abs_mask);
    return _mm512_cmpge_epu32_mask(bits, fl);
  };
  for (; j + 64 <= m; j += 64) {
    uint64_t mask = at_least(j) | at_least(j + 16) << 16 | at_least(j + 32) << 32 | at_least(j + 48) << 48;
    for (; mask; mask &= mask - 1) {
      const uint64_t i = j + static_cast<uint64_t>(__builtin_ctzll(mask));
      pos[k] = first + static_cast<uint32_t>(i), val[k] = delta[i], ++k;
    }
  }
#endif
  for (; j < m; ++j) {  // branchless: written always, kept by advancing
    pos[k] = first + static_cast<uint32_t>(j);
    val[k] = delta[j];
    k += magnitude_bits(delta[j]) >= floor;
  }
  return k;
}
}  // namespace

void MagnitudeKept::add(uint64_t first, std::span<const float> delta) {
  const uint64_t m = delta.size();
  if (pos_.size() < n_ + m + 16) pos_.resize(n_ + m + 16), val_.resize(n_ + m + 16);
  n_ += keep_magnitudes(delta.data(), floor_, static_cast<uint32_t>(first), m, pos_.data() + n_, val_.data() + n_);
  seen_ += m;
  if (2 * n_ > 3 * target()) prune();
}

uint64_t MagnitudeKept::target() const {
  return std::min(want_, static_cast<uint64_t>(fraction_ * static_cast<double>(seen_)) + 1024);
}

void MagnitudeKept::prune() {
  // the target-th largest magnitude: a histogram of the high 16 bits, then of the low 16 inside
  // its bucket; the floor rises to it (its ties stay, unless they alone are more than 1.5·target:
  // then the floor passes them too)
  const uint64_t want = target();
  std::vector<uint64_t> hist(kScoreBuckets, 0);
  for (size_t i = 0; i < n_; ++i) ++hist[magnitude_bits(val_[i]) >> 16];
  const auto [hi, above_bucket] = find_bucket(hist, want);
  std::fill(hist.begin(), hist.end(), 0);
  for (size_t i = 0; i < n_; ++i)
    if (const uint32_t key = magnitude_bits(val_[i]); (key >> 16) == hi) ++hist[key & 0xffffu];
  const auto [lo, above_value] = find_bucket(hist, want - above_bucket);
  uint32_t floor = (hi << 16) | lo;
  if (2 * (above_bucket + above_value + hist[lo]) > 3 * want) ++floor;
  floor_ = std::max(floor_, floor);
  size_t w = 0;
  for (size_t i = 0; i < n_; ++i) {
    pos_[w] = pos_[i], val_[w] = val_[i];
    w += magnitude_bits(val_[i]) >= floor_;
  }
  n_ = w;
}

}  // namespace deltakit
