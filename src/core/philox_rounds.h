// Philox4x32-10's rounds and the per-element word of a tensor's stream (src/core/philox.h gives
// the definition), in one DK_HD header: the CPU's TensorRng and the GPU's DARE kernel
// (src/gpu) draw their drop masks from these same lines, so the two cannot drift apart.
#pragma once

#include <cstdint>

#include "src/core/host_device.h"

namespace deltakit {

// The key and the name half of the counter of one tensor's stream.
struct PhiloxStream {
  uint32_t key0 = 0, key1 = 0, name_lo = 0, name_hi = 0;
};

// Ten rounds over counter c (4 words) with key (k0, k1), in place.
DK_HD inline void philox4x32_10_rounds(uint32_t c[4], uint32_t k0, uint32_t k1) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {  // key schedule: bump by the Weyl constants before every round but the first
      k0 += kWeyl0;
      k1 += kWeyl1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * c[0], p1 = static_cast<uint64_t>(kMul1) * c[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    const uint32_t n0 = hi1 ^ c[1] ^ k0, n2 = hi0 ^ c[3] ^ k1;
    c[0] = n0, c[1] = lo1, c[2] = n2, c[3] = lo0;
  }
}

// The four words of Philox block `block` (elements 4·block .. 4·block + 3) of a stream.
DK_HD inline void philox_block_words(const PhiloxStream& s, uint64_t block, uint32_t out[4]) {
  out[0] = static_cast<uint32_t>(block), out[1] = static_cast<uint32_t>(block >> 32);
  out[2] = s.name_lo, out[3] = s.name_hi;
  philox4x32_10_rounds(out, s.key0, s.key1);
}

// The word of element i.
DK_HD inline uint32_t philox_word(const PhiloxStream& s, uint64_t i) {
  uint32_t w[4];
  philox_block_words(s, i / 4, w);
  return w[i % 4];
}

}  // namespace deltakit
