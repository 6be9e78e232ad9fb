// Counter-based randomness: Philox4x32-10 (Salmon et al., SC'11, Random123's constants), keyed
// so that the random number for element i of tensor `name` depends on nothing but
// (seed, name, i) — not on rank count, thread count or block size.
//
// The exact definition (a few lines of numpy reproduce it; see tests/unit/philox_test.cpp):
//   name_hash = FNV-1a 64 of the tensor name's UTF-8 bytes
//               (offset 0xcbf29ce484222325, prime 0x100000001b3)
//   key       = (lo32(seed), hi32(seed))
//   counter   = (lo32(i / 4), hi32(i / 4), lo32(name_hash), hi32(name_hash))
//   word      = philox4x32_10(counter, key)[i % 4]          -> uint32 for element i
//   uniform   = word * 2^-32 in [0, 1)
//   Bernoulli(p) "drop" is `word < floor(p * 2^32)` (exact integer compare; p = 1 drops all).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "src/core/philox_rounds.h"

namespace deltakit {

using Philox4x32Counter = std::array<uint32_t, 4>;
using Philox4x32Key = std::array<uint32_t, 2>;

Philox4x32Counter philox4x32_10(Philox4x32Counter counter, Philox4x32Key key);

uint64_t fnv1a64(std::string_view bytes);

// The random stream of one tensor.
class TensorRng {
 public:
  TensorRng(uint64_t seed, std::string_view tensor_name);
  // The uint32 word of element i.
  uint32_t word(uint64_t i) const;
  // Words of elements [first, first + n) into out (fast path: one Philox call per 4 elements).
  void words(uint64_t first, uint64_t n, uint32_t* out) const;
  // The integer threshold for Bernoulli(p): element dropped iff word < threshold (p=1 -> all).
  static uint64_t drop_threshold(double p);
  // A standard normal for element i: Box-Muller on words 2i and 2i+1 (weight initialisation,
  // test fixtures).
  float normal(uint64_t i) const;
  // The stream's key and name words, as the GPU's kernels take them (src/core/philox_rounds.h).
  const PhiloxStream& stream() const { return s_; }

 private:
  PhiloxStream s_;
};

}  // namespace deltakit
