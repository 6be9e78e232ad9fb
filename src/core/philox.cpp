#include "src/core/philox.h"

#include <cmath>

namespace deltakit {

namespace {
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}
}  // namespace

Philox4x32Counter philox4x32_10(Philox4x32Counter c, Philox4x32Key k) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {  // key schedule: bump by the Weyl constants before every round but the first
      k[0] += kWeyl0;
      k[1] += kWeyl1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kMul0, c[0], hi0, lo0);
    mulhilo(kMul1, c[2], hi1, lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
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
  key_ = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
  uint64_t h = fnv1a64(tensor_name);
  name_lo_ = static_cast<uint32_t>(h);
  name_hi_ = static_cast<uint32_t>(h >> 32);
}

uint32_t TensorRng::word(uint64_t i) const {
  uint64_t block = i / 4;
  auto out =
      philox4x32_10({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), name_lo_, name_hi_}, key_);
  return out[i % 4];
}

void TensorRng::words(uint64_t first, uint64_t n, uint32_t* out) const {
  uint64_t i = first, end = first + n;
  while (i < end && i % 4) *out++ = word(i++);
  for (; i + 4 <= end; i += 4, out += 4) {  // whole Philox blocks
    const uint64_t block = i / 4;
    auto w =
        philox4x32_10({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), name_lo_, name_hi_}, key_);
    out[0] = w[0], out[1] = w[1], out[2] = w[2], out[3] = w[3];
  }
  while (i < end) {
    uint64_t block = i / 4;
    auto w =
        philox4x32_10({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), name_lo_, name_hi_}, key_);
    for (uint64_t j = i % 4; j < 4 && i < end; ++j, ++i) *out++ = w[j];
  }
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
