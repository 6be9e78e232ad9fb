#include "src/core/philox.h"

#include <cmath>

#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12 warns inside its own AVX-512 headers (their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

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

namespace {

// Philox blocks [block, block + 16) into out[0, 64): philox4x32_10_rounds on 16 counters side by
// side, one vector per counter word (the scalar block at a time was 16% of a DARE compress, and
// GCC 12 does not vectorize the widening multiplies by itself). Same arithmetic, same words: the
// Philox tests compare every word with philox_word.
void philox_16_blocks_scalar(const PhiloxStream& s, uint64_t block, uint32_t* out) {
  for (unsigned k = 0; k < 16; ++k) philox_block_words(s, block + k, out + 4 * k);
}

#ifdef __AVX512F__
// One round's products c * m for 16 lanes: the high and low 32 bits (vpmuludq on the even lanes
// and on the odd ones shifted down; no vpmulld, which costs twice as much).
inline void mul_hi_lo(__m512i c, __m512i m, __m512i& hi, __m512i& lo) {
  const __m512i even = _mm512_mul_epu32(c, m), odd = _mm512_mul_epu32(_mm512_srli_epi64(c, 32), m);
  hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

void philox_16_blocks(const PhiloxStream& s, uint64_t block, uint32_t* out) {
  const uint32_t lo32 = static_cast<uint32_t>(block);
  if (lo32 > 0xFFFFFFFFu - 15) return philox_16_blocks_scalar(s, block, out);  // the counter's carry
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(lo32)), iota);
  __m512i c1 = _mm512_set1_epi32(static_cast<int>(block >> 32));
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(s.name_lo)), c3 = _mm512_set1_epi32(static_cast<int>(s.name_hi));
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(kMul0)), m1 = _mm512_set1_epi32(static_cast<int>(kMul1));
  uint32_t k0 = s.key0, k1 = s.key1;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) k0 += kWeyl0, k1 += kWeyl1;
    __m512i hi0, lo0, hi1, lo1;
    mul_hi_lo(c0, m0, hi0, lo0);
    mul_hi_lo(c2, m1, hi1, lo1);
    c0 = _mm512_ternarylogic_epi32(hi1, c1, _mm512_set1_epi32(static_cast<int>(k0)), 0x96);  // a ^ b ^ c
    c2 = _mm512_ternarylogic_epi32(hi0, c3, _mm512_set1_epi32(static_cast<int>(k1)), 0x96);
    c1 = lo1, c3 = lo0;
  }
  // 16 counters' words to stream order, out[4k + j] = word j of counter k: a 4 x 16 transpose
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);  // counters 4L, 4L + 1
  const __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);  // 4L + 2, 4L + 3
  const __m512i w0 = _mm512_shuffle_i32x4(u0, u1, 0x44), w1 = _mm512_shuffle_i32x4(u2, u3, 0x44);
  const __m512i w2 = _mm512_shuffle_i32x4(u0, u1, 0xEE), w3 = _mm512_shuffle_i32x4(u2, u3, 0xEE);
  _mm512_storeu_si512(out, _mm512_shuffle_i32x4(w0, w1, 0x88));
  _mm512_storeu_si512(out + 16, _mm512_shuffle_i32x4(w0, w1, 0xDD));
  _mm512_storeu_si512(out + 32, _mm512_shuffle_i32x4(w2, w3, 0x88));
  _mm512_storeu_si512(out + 48, _mm512_shuffle_i32x4(w2, w3, 0xDD));
}
#elif defined(__AVX2__)
// The same with 8 counters per vector (machines without AVX-512): the even and odd lanes'
// products by vpmuludq, blended back.
inline void mul_hi_lo(__m256i c, __m256i m, __m256i& hi, __m256i& lo) {
  const __m256i even = _mm256_mul_epu32(c, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), m);
  hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// Blocks [block, block + 8) into out[0, 32); the caller has ruled out a carry out of the low word.
void philox_8_blocks(const PhiloxStream& s, uint64_t block, uint32_t* out) {
  constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(block))),
                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  __m256i c1 = _mm256_set1_epi32(static_cast<int>(block >> 32));
  __m256i c2 = _mm256_set1_epi32(static_cast<int>(s.name_lo)), c3 = _mm256_set1_epi32(static_cast<int>(s.name_hi));
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(kMul0)), m1 = _mm256_set1_epi32(static_cast<int>(kMul1));
  uint32_t k0 = s.key0, k1 = s.key1;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) k0 += kWeyl0, k1 += kWeyl1;
    __m256i hi0, lo0, hi1, lo1;
    mul_hi_lo(c0, m0, hi0, lo0);
    mul_hi_lo(c2, m1, hi1, lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
    c1 = lo1, c3 = lo0;
  }
  // 4 x 8 transpose: out[4k + j] = word j of counter k
  const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
  const __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
  const __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);  // counters 0|4, 1|5
  const __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);  // 2|6, 3|7
  auto* o = reinterpret_cast<__m256i*>(out);
  _mm256_storeu_si256(o, _mm256_permute2x128_si256(u0, u1, 0x20));
  _mm256_storeu_si256(o + 1, _mm256_permute2x128_si256(u2, u3, 0x20));
  _mm256_storeu_si256(o + 2, _mm256_permute2x128_si256(u0, u1, 0x31));
  _mm256_storeu_si256(o + 3, _mm256_permute2x128_si256(u2, u3, 0x31));
}

void philox_16_blocks(const PhiloxStream& s, uint64_t block, uint32_t* out) {
  if (static_cast<uint32_t>(block) > 0xFFFFFFFFu - 15) return philox_16_blocks_scalar(s, block, out);  // the carry
  philox_8_blocks(s, block, out);
  philox_8_blocks(s, block + 8, out + 32);
}
#else
void philox_16_blocks(const PhiloxStream& s, uint64_t block, uint32_t* out) { philox_16_blocks_scalar(s, block, out); }
#endif

}  // namespace

void TensorRng::words(uint64_t first, uint64_t n, uint32_t* out) const {
  uint64_t i = first, end = first + n;
  while (i < end && i % 4) *out++ = word(i++);
  for (; i + 64 <= end; i += 64, out += 64) philox_16_blocks(s_, i / 4, out);
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
