// The inner loop of BitDelta's product with the sign bits transposed: for a block of 16 output
// rows, masks[k] holds bit (row i, column k) in bit i, so one masked add of x[k] broadcast updates
// all 16 rows' sums — the bits are the mask register (AVX-512), 16 outputs per instruction.
// Each lane sums its row's set entries in column order, split over four partial sums by k mod 4
// (so the adds do not wait on each other) joined as (p0 + p1) + (p2 + p3); the plain loop used
// without AVX-512 does the same adds in the same order, so every machine gives the same bits.
#pragma once

#include <cstdint>

namespace deltakit {

// out[j][i] = Σ_{k0 <= k < k1, bit i of masks[k] set} x[j][k], for inputs j < count (<= 4).
void masked_column_sums(const uint16_t* masks, const float* const* x, int count, int64_t k0, int64_t k1,
                        float (*out)[16]);
// Σ_{k < n} x[k] in the lanes of src/core/fixed_dot.h.
float lane_sum(const float* x, int64_t n);

}  // namespace deltakit
