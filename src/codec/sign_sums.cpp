#include "src/codec/sign_sums.h"

#include <immintrin.h>

#include "src/core/fixed_dot.h"

namespace deltakit {

namespace {
// C inputs at once, C a constant so the loops over inputs unroll into straight code
template <int C>
void column_sums(const uint16_t* masks, const float* const* x, int64_t k0, int64_t k1, float (*out)[16]) {
#if defined(__AVX512F__)
  __m512 p[C][4];
  for (int j = 0; j < C; ++j)
    for (int q = 0; q < 4; ++q) p[j][q] = _mm512_setzero_ps();
  int64_t k = k0;
  for (; k + 4 <= k1; k += 4)
    for (int q = 0; q < 4; ++q) {
      const __mmask16 m = masks[k + q];
      for (int j = 0; j < C; ++j) p[j][q] = _mm512_mask_add_ps(p[j][q], m, p[j][q], _mm512_set1_ps(x[j][k + q]));
    }
  for (int q = 0; k < k1; ++k, ++q) {
    const __mmask16 m = masks[k];
    for (int j = 0; j < C; ++j) p[j][q] = _mm512_mask_add_ps(p[j][q], m, p[j][q], _mm512_set1_ps(x[j][k]));
  }
  for (int j = 0; j < C; ++j)
    _mm512_storeu_ps(out[j], _mm512_add_ps(_mm512_add_ps(p[j][0], p[j][1]), _mm512_add_ps(p[j][2], p[j][3])));
#else
  for (int j = 0; j < C; ++j) {
    float p[4][16] = {};
    for (int64_t k = k0; k < k1; ++k) {
      const int q = static_cast<int>((k - k0) % 4);
      for (int i = 0; i < 16; ++i)
        if ((masks[k] >> i) & 1) p[q][i] += x[j][k];
    }
    for (int i = 0; i < 16; ++i) out[j][i] = (p[0][i] + p[1][i]) + (p[2][i] + p[3][i]);
  }
#endif
}
}  // namespace

void masked_column_sums(const uint16_t* masks, const float* const* x, int count, int64_t k0, int64_t k1,
                        float (*out)[16]) {
  switch (count) {
    case 1: return column_sums<1>(masks, x, k0, k1, out);
    case 2: return column_sums<2>(masks, x, k0, k1, out);
    case 3: return column_sums<3>(masks, x, k0, k1, out);
    default: return column_sums<4>(masks, x, k0, k1, out);
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
