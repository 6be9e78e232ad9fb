// Exact top-k by magnitude without sorting. The k entries of largest |x| (ties to the lower
// index, a total order) are those above the cut, plus the first `ties` entries equal to it in
// index order. The cut is found by a two-pass radix select over the magnitudes' bit patterns
// (|x|'s IEEE bits order like |x| itself): two histogram passes instead of an index array and
// nth_element with a comparator, which was most of the TIES trim's time.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace deltakit {

inline uint32_t magnitude_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u & 0x7fffffffu;
}

struct MagnitudeCut {
  uint32_t bits = 0xffffffffu;  // no float's magnitude bits reach this: k = 0 keeps nothing
  uint64_t ties = 0;            // entries whose magnitude equals the cut that are kept

  // Ask each candidate once, in index order (skipped entries are not asked): mutates `ties`.
  bool keep(float x) {  // branch-free: with random magnitudes a branch mispredicts half the time
    const uint32_t b = magnitude_bits(x);
    const bool tie = (b == bits) & (ties > 0);
    ties -= tie;
    return (b > bits) | tie;
  }
};

// The cut for the k largest |x| among the entries not marked in `skip` (empty: none skipped);
// k larger than the candidates keeps them all.
MagnitudeCut magnitude_cut(std::span<const float> x, uint64_t k, std::span<const uint8_t> skip = {});

}  // namespace deltakit
