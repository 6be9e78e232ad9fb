#include "src/codec/magnitude_kept.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <algorithm>
#include <functional>
#include <utility>

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

MagnitudeKept::MagnitudeKept(uint64_t want, double fraction)
    : want_(want < 1 ? 1 : want),
      fraction_(fraction),
      pos_(ThreadSpare<uint32_t, 2>::take()),
      keys_(ThreadSpare<uint32_t, 3>::take()),
      val_(ThreadSpare<float, 4>::take()) {}

MagnitudeKept::~MagnitudeKept() {
  ThreadSpare<uint32_t, 2>::give(std::move(pos_));
  ThreadSpare<uint32_t, 3>::give(std::move(keys_));
  ThreadSpare<float, 4>::give(std::move(val_));
}

void MagnitudeKept::add(uint64_t first, std::span<const float> delta) {
  const uint64_t m = delta.size();
  if (pos_.size() < n_ + m + 16) {
    // at most 1.5 targets are held before a block: room for the largest target at once, so a
    // stream of `want` entries grows it once (else by doubling)
    const uint64_t most = std::min(want_, static_cast<uint64_t>(fraction_ * static_cast<double>(want_)) + 1024);
    const size_t size = std::max<size_t>({n_ + m + 16, 3 * most / 2 + 2 * m + 16, 2 * pos_.size()});
    pos_.resize(size), keys_.resize(size), val_.resize(size);
  }
  n_ += keep_magnitudes(delta.data(), floor_, static_cast<uint32_t>(first), m, pos_.data() + n_, val_.data() + n_);
  seen_ += m;
  if (2 * n_ > 3 * target()) prune();
}

uint64_t MagnitudeKept::target() const {
  return std::min(want_, static_cast<uint64_t>(fraction_ * static_cast<double>(seen_)) + 1024);
}

void MagnitudeKept::prune() {
  // the target-th largest magnitude, by nth_element over the held keys (O(held), and held is
  // about 1.5 targets: a histogram of 2^16 buckets would cost more to clear than to fill here);
  // the floor rises to it (its ties stay, unless with them more than 1.5·target would: then the
  // floor passes them too)
  const uint64_t want = target();
  uint32_t *pos = pos_.data(), *keys = keys_.data();
  float* val = val_.data();
  for (size_t i = 0; i < n_; ++i) keys[i] = magnitude_bits(val[i]);
  std::nth_element(keys, keys + want - 1, keys + n_, std::greater<>());
  const uint32_t at = keys[want - 1];
  uint32_t floor = at;
  uint64_t at_least = 0;
  for (size_t i = 0; i < n_; ++i) at_least += keys[i] >= at;
  if (2 * at_least > 3 * want) ++floor;
  floor_ = std::max(floor_, floor);
  size_t w = 0;
  for (size_t i = 0; i < n_; ++i) {
    pos[w] = pos[i], val[w] = val[i];
    w += magnitude_bits(val[i]) >= floor_;
  }
  n_ = w;
}

}  // namespace deltakit
