#include "src/serve/invariant_gemm.h"

#include <omp.h>

#include <algorithm>

#include "src/core/fixed_dot.h"

namespace deltakit {

namespace {
// fixed_dot of x with four weight rows at once: the same lanes, the same order, the same fold.
void dot4(const float* x, const float* w0, const float* w1, const float* w2, const float* w3, int64_t K, float* out) {
  float a0[16] = {}, a1[16] = {}, a2[16] = {}, a3[16] = {};
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    for (int i = 0; i < 16; ++i) {
      const float xi = x[k + i];
      a0[i] += xi * w0[k + i];
      a1[i] += xi * w1[k + i];
      a2[i] += xi * w2[k + i];
      a3[i] += xi * w3[k + i];
    }
  for (int i = 0; k < K; ++k, ++i) {
    a0[i] += x[k] * w0[k];
    a1[i] += x[k] * w1[k];
    a2[i] += x[k] * w2[k];
    a3[i] += x[k] * w3[k];
  }
  out[0] = fold16(a0), out[1] = fold16(a1), out[2] = fold16(a2), out[3] = fold16(a3);
}
constexpr int64_t kColsPerTask = 64;  // weight rows per task: they stay in cache across the M inputs
}  // namespace

void invariant_gemm(float* out, const float* x, const float* w, const float* bias, int64_t M, int64_t K, int64_t N,
                    unsigned threads) {
  const int64_t tasks = (N + kColsPerTask - 1) / kColsPerTask;
#pragma omp parallel for schedule(static) \
    num_threads(std::max(1u, threads)) if (threads > 1 && M * K * N > (int64_t{1} << 20))
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t n0 = t * kColsPerTask, n1 = std::min(N, n0 + kColsPerTask);
    for (int64_t m = 0; m < M; ++m) {
      const float* xm = x + m * K;
      float* om = out + m * N;
      int64_t n = n0;
      for (; n + 4 <= n1; n += 4) dot4(xm, w + n * K, w + (n + 1) * K, w + (n + 2) * K, w + (n + 3) * K, K, om + n);
      for (; n < n1; ++n) om[n] = fixed_dot(xm, w + n * K, K);
      if (bias)
        for (int64_t j = n0; j < n1; ++j) om[j] += bias[j];
    }
  }
}

}  // namespace deltakit
