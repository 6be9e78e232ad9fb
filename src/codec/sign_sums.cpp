#include "src/codec/sign_sums.h"

// GCC 12 warns inside its own AVX-512 headers (their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "src/core/fixed_dot.h"

namespace deltakit {

namespace {
bool g_portable = false;  // tests: take the plain loops even where AVX-512 is compiled in
}  // namespace

void use_portable_sign_sums(bool on) { g_portable = on; }

void nibble_tables(const float* x, int64_t groups, float* tables) {
#if defined(__AVX512F__)
  if (!g_portable) {
    // lane v selects x[t] where bit t of v is set; unselected lanes are +0.0, as in the loop below
    for (int64_t g = 0; g < groups; ++g) {
      const float* xg = x + 4 * g;
      const __m512 a = _mm512_maskz_mov_ps(0xAAAA, _mm512_set1_ps(xg[0]));
      const __m512 b = _mm512_maskz_mov_ps(0xCCCC, _mm512_set1_ps(xg[1]));
      const __m512 c = _mm512_maskz_mov_ps(0xF0F0, _mm512_set1_ps(xg[2]));
      const __m512 d = _mm512_maskz_mov_ps(0xFF00, _mm512_set1_ps(xg[3]));
      _mm512_storeu_ps(tables + 16 * g, _mm512_add_ps(_mm512_add_ps(a, b), _mm512_add_ps(c, d)));
    }
    return;
  }
#endif
  for (int64_t g = 0; g < groups; ++g) {
    const float* xg = x + 4 * g;
    float* t = tables + 16 * g;
    for (int v = 0; v < 16; ++v)
      t[v] = ((v & 1 ? xg[0] : 0.0f) + (v & 2 ? xg[1] : 0.0f)) + ((v & 4 ? xg[2] : 0.0f) + (v & 8 ? xg[3] : 0.0f));
  }
}

namespace {
template <int C>
void nibble_sums_n(const uint8_t* nibbles, const float* const* tables, int64_t g0, int64_t g1, float (*out)[16]) {
#if defined(__AVX512F__)
  if (!g_portable) {
    __m512 p[C][4];
    for (int j = 0; j < C; ++j)
      for (int q = 0; q < 4; ++q) p[j][q] = _mm512_setzero_ps();
    // lanes 0-7 take a byte's low nibble, lanes 8-15 the same byte's high nibble; the permute
    // reads only an index's low 4 bits
    const __m512i shift = _mm512_set_epi32(4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int64_t g = g0; g < g1; ++g) {
      const __m128i b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(nibbles + 8 * g));
      const __m512i idx = _mm512_srlv_epi32(_mm512_cvtepu8_epi32(_mm_unpacklo_epi64(b8, b8)), shift);
      const int q = static_cast<int>((g - g0) & 3);
      for (int j = 0; j < C; ++j)
        p[j][q] = _mm512_add_ps(p[j][q], _mm512_permutexvar_ps(idx, _mm512_loadu_ps(tables[j] + 16 * g)));
    }
    for (int j = 0; j < C; ++j)
      _mm512_storeu_ps(out[j], _mm512_add_ps(_mm512_add_ps(p[j][0], p[j][1]), _mm512_add_ps(p[j][2], p[j][3])));
    return;
  }
#endif
  for (int j = 0; j < C; ++j) {
    float p[4][16] = {};
    for (int64_t g = g0; g < g1; ++g) {
      const int q = static_cast<int>((g - g0) & 3);
      for (int i = 0; i < 16; ++i) {
        const uint8_t b = nibbles[8 * g + (i & 7)];
        p[q][i] += tables[j][16 * g + (i < 8 ? b & 15 : b >> 4)];
      }
    }
    for (int i = 0; i < 16; ++i) out[j][i] = (p[0][i] + p[1][i]) + (p[2][i] + p[3][i]);
  }
}
}  // namespace

void nibble_sums(const uint8_t* nibbles, const float* const* tables, int count, int64_t g0, int64_t g1,
                 float (*out)[16]) {
  switch (count) {
    case 1: return nibble_sums_n<1>(nibbles, tables, g0, g1, out);
    case 2: return nibble_sums_n<2>(nibbles, tables, g0, g1, out);
    case 3: return nibble_sums_n<3>(nibbles, tables, g0, g1, out);
    default: return nibble_sums_n<4>(nibbles, tables, g0, g1, out);
  }
}

float lane_sum(const float* x, int64_t n) {
  float acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int i = 0; i < 16; ++i) acc[i] += x[k + i];
  for (int i = 0; k < n; ++k, ++i) acc[i] += x[k];
  return fold16(acc);
}

}  // namespace deltakit
