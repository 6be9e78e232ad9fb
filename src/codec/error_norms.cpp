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
      if (keep_) kept_err_.push_back(lane_sum(num_)), kept_den_.push_back(lane_sum(den_));
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
#elif defined(__AVX2__)
  // lanes 0-3 and 4-7 in two registers each: the same adds in the same order as one(i)
  __m256d num_lo = _mm256_loadu_pd(num_), num_hi = _mm256_loadu_pd(num_ + 4);
  __m256d den_lo = _mm256_loadu_pd(den_), den_hi = _mm256_loadu_pd(den_ + 4);
  for (; i + kLanes <= e; i += kLanes) {
    const __m256d d_lo = _mm256_cvtps_pd(_mm_loadu_ps(block + (i - b)));
    const __m256d d_hi = _mm256_cvtps_pd(_mm_loadu_ps(block + (i - b) + 4));
    const __m256d x_lo = _mm256_sub_pd(d_lo, _mm256_cvtps_pd(_mm_loadu_ps(recon + (i - b))));
    const __m256d x_hi = _mm256_sub_pd(d_hi, _mm256_cvtps_pd(_mm_loadu_ps(recon + (i - b) + 4)));
    num_lo = _mm256_add_pd(num_lo, _mm256_mul_pd(x_lo, x_lo));
    num_hi = _mm256_add_pd(num_hi, _mm256_mul_pd(x_hi, x_hi));
    den_lo = _mm256_add_pd(den_lo, _mm256_mul_pd(d_lo, d_lo));
    den_hi = _mm256_add_pd(den_hi, _mm256_mul_pd(d_hi, d_hi));
  }
  _mm256_storeu_pd(num_, num_lo), _mm256_storeu_pd(num_ + 4, num_hi);
  _mm256_storeu_pd(den_, den_lo), _mm256_storeu_pd(den_ + 4, den_hi);
#endif
  for (; i < e; ++i) one(i);
}

}  // namespace deltakit
