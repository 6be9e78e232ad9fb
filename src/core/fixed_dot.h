// A dot product whose rounding depends on nothing but its inputs and length: 16 partial sums
// (element k goes to sum k mod 16), then a fixed pairwise tree. The compiler vectorizes the 16
// lanes at any width, and with FMA contraction off (CMakeLists.txt) every machine and every
// batch gives the same bits — what makes serving batch-invariant (src/serve/).
#pragma once

#include <cstdint>

namespace deltakit {

inline float fold16(const float* acc) {
  float s8[8], s4[4];
  for (int i = 0; i < 8; ++i) s8[i] = acc[i] + acc[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

inline float fixed_dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int i = 0; i < 16; ++i) acc[i] += a[k + i] * b[k + i];
  for (int i = 0; k < n; ++k, ++i) acc[i] += a[k] * b[k];
  return fold16(acc);
}

}  // namespace deltakit
