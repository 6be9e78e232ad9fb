// out[M,N] = x[M,K]·W[N,K]ᵀ (+ bias) where every element is fixed_dot(x_m, W_n)
// (src/core/fixed_dot.h): the same bits whatever M is, whichever rows share the call, and for
// any thread count — unlike a BLAS sgemm, whose kernels (and so roundings) change with the
// matrix shape. Tiled 4 weight rows at a time so each input load feeds four sums.
#pragma once

#include <cstdint>

namespace deltakit {

void invariant_gemm(float* out, const float* x, const float* w, const float* bias, int64_t M, int64_t K, int64_t N,
                    unsigned threads);

}  // namespace deltakit
