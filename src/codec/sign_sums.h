// The inner loop of BitDelta's product (src/codec/bitdelta.cpp): a 16-row block's sign bits
// over columns 4g..4g+3 are 16 nibbles (8 bytes: byte b holds row b in its low half, row b + 8
// in its high half), and each input has a table per group g of its 16 subset sums, so one
// permute (the nibbles index the table) and one add update 16 rows over 4 columns. Each lane sums
// over four partial sums by g mod 4 (so the adds do not wait on each other) joined as
// (p0 + p1) + (p2 + p3); the plain loops used without AVX-512 do the same adds in the same
// order, so every machine gives the same bits.
#pragma once

#include <cstdint>

namespace deltakit {

// Each input's tables:
//   tables[g][v] = ((v&1 ? x[4g] : 0) + (v&2 ? x[4g+1] : 0)) + ((v&4 ? x[4g+2] : 0) + (v&8 ? x[4g+3] : 0))
void nibble_tables(const float* x, int64_t groups, float* tables);
// out[j][i] = Σ_{g0 <= g < g1} tables[j][g][nibble (row i, group g)], for inputs j < count (<= 4).
void nibble_sums(const uint8_t* nibbles, const float* const* tables, int count, int64_t g0, int64_t g1,
                 float (*out)[16]);
// Tests: take the plain loops even where the AVX-512 ones are compiled in (they must agree).
void use_portable_sign_sums(bool on);
// Σ_{k < n} x[k] in the lanes of src/core/fixed_dot.h.
float lane_sum(const float* x, int64_t n);

}  // namespace deltakit
