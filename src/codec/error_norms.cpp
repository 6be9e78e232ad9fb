#include "src/codec/error_norms.h"

// GCC 12 warns inside its own AVX-512 headers (their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>

namespace deltakit {

void ErrorLanes::add_block(const float* block, uint64_t b, uint64_t e, const float* recon) {
  while (b < e) {
    const uint64_t end = std::min(e, (b / kPiece + 1) * kPiece);
    add_in_piece(block, b, end, recon);
    if (end % kPiece == 0) {  // the piece is whole: its sum joins the total
      total_.err_sq += lane_sum(num_), total_.delta_sq += lane_sum(den_);
      std::fill(num_, num_ + kLanes, 0.0), std::fill(den_, den_ + kLanes, 0.0);
    }
    block += end - b, recon += end - b, b = end;
  }
}

void ErrorLanes::add_in_piece(const float* block, uint64_t b, uint64_t e, const float* recon) {
  auto one = [&](uint64_t i) {
    const double d = block[i - b], x = d - static_cast<double>(recon[i - b]);
    num_[i % kLanes] += x * x;
    den_[i % kLanes] += d * d;
  };
  uint64_t i = b;
  for (; i < e && i % kLanes; ++i) one(i);
#if defined(__AVX512F__)
  __m512d num = _mm512_loadu_pd(num_), den = _mm512_loadu_pd(den_);
  for (; i + kLanes <= e; i += kLanes) {
    const __m512d d = _mm512_cvtps_pd(_mm256_loadu_ps(block + (i - b)));
    const __m512d x = _mm512_sub_pd(d, _mm512_cvtps_pd(_mm256_loadu_ps(recon + (i - b))));
    num = _mm512_add_pd(num, _mm512_mul_pd(x, x));
    den = _mm512_add_pd(den, _mm512_mul_pd(d, d));
  }
  _mm512_storeu_pd(num_, num);
  _mm512_storeu_pd(den_, den);
#endif
  for (; i < e; ++i) one(i);
}

}  // namespace deltakit
