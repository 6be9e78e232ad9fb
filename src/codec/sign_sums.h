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
// The faster form where columns come in fours: a 16-row block's bits over columns 4g..4g+3 are 16
// nibbles (8 bytes: byte b holds row b in its low half, row b + 8 in its high half), and each
// input has a table per group g of its 16 subset sums, so one permute (the nibbles index the
// table) and one add update 16 rows over 4 columns.
//   tables[g][v] = ((v&1 ? x[4g] : 0) + (v&2 ? x[4g+1] : 0)) + ((v&4 ? x[4g+2] : 0) + (v&8 ? x[4g+3] : 0))
void nibble_tables(const float* x, int64_t groups, float* tables);
// out[j][i] = Σ_{g0 <= g < g1} tables[j][g][nibble (row i, group g)], over four partial sums by
// g mod 4 joined as (p0 + p1) + (p2 + p3); inputs j < count (<= 4).
void nibble_sums(const uint8_t* nibbles, const float* const* tables, int count, int64_t g0, int64_t g1,
                 float (*out)[16]);
// Tests: take the plain loops even where the AVX-512 ones are compiled in (they must agree).
void use_portable_sign_sums(bool on);
// Σ_{k < n} x[k] in the lanes of src/core/fixed_dot.h.
float lane_sum(const float* x, int64_t n);

}  // namespace deltakit
