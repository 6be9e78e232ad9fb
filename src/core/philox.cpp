#include "src/core/philox.h"

#include <cmath>

namespace deltakit {

Philox4x32Counter philox4x32_10(Philox4x32Counter c, Philox4x32Key k) {
  philox4x32_10_rounds(c.data(), k[0], k[1]);
  return c;
}

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char ch : bytes) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return h;
}

TensorRng::TensorRng(uint64_t seed, std::string_view tensor_name) {
  const uint64_t h = fnv1a64(tensor_name);
  s_ = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(h),
        static_cast<uint32_t>(h >> 32)};
}

uint32_t TensorRng::word(uint64_t i) const { return philox_word(s_, i); }

void TensorRng::words(uint64_t first, uint64_t n, uint32_t* out) const {
  uint64_t i = first, end = first + n;
  while (i < end && i % 4) *out++ = word(i++);
  for (; i + 4 <= end; i += 4, out += 4) philox_block_words(s_, i / 4, out);  // whole Philox blocks
  while (i < end) *out++ = word(i++);
}

float TensorRng::normal(uint64_t i) const {
  const double u0 = (word(2 * i) + 0.5) * (1.0 / 4294967296.0), u1 = word(2 * i + 1) * (1.0 / 4294967296.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u0)) * std::cos(6.283185307179586 * u1));
}

uint64_t TensorRng::drop_threshold(double p) {
  if (!(p > 0)) return 0;
  if (p >= 1) return uint64_t{1} << 32;
  return static_cast<uint64_t>(std::floor(p * 4294967296.0));
}

}  // namespace deltakit
