// Low rank: the delta as a rows × cols matrix (last dim = cols), truncated to rank r by SVD:
// δ̂ = (U·diag(s)) Vᵀ, optimal in Frobenius norm (Eckart–Young: ‖δ − δ̂‖² = Σ_{i>r} s_i²).
// r is given (`rank`) or the smallest that keeps `energy` of Σ s_i². Full SVD (LAPACK sgesdd)
// while min(rows, cols) <= full_svd_max_dim; above it a randomized SVD (Halko, Martinsson &
// Tropp 2011: Gaussian sketch of r + 10 columns from the counter RNG, 2 power iterations with
// re-orthonormalization), which is deterministic for a given seed and tensor name.
// Parts: lowrank.us [rows, r] and lowrank.v [cols, r], row-major, in the tensor's value dtype.
#pragma once

#include <memory>
#include <string_view>

#include "src/codec/codec_types.h"
#include "src/codec/delta_product.h"

namespace deltakit {

struct LowrankParams {
  uint64_t rank = 0;    // > 0: fixed rank
  double energy = 0.0;  // else: in (0, 1]
  uint64_t full_svd_max_dim = 1024;
  uint64_t seed = 0;
};

// The singular values of a row-major rows × cols matrix (descending), for tests and planning.
std::vector<float> singular_values(std::span<const float> a, uint64_t rows, uint64_t cols);

// A factorization δ ≈ US·Vᵀ: us [rows, r] = U·diag(s), v [cols, r], row-major, fp32.
struct LowrankFactors {
  uint64_t r = 0;
  std::vector<float> us, v;
  double energy_kept = 1.0;  // Σ_{i≤r} s_i² / ‖δ‖²
  bool randomized = false;
};
// The truncated SVD lowrank_encode stores (the same rank choice, the same sketch for a seed).
LowrankFactors lowrank_factorize(const LowrankParams& prm, std::string_view name, std::span<const float> delta,
                                 uint64_t rows, uint64_t cols);
// US·Vᵀ as a row-major rows × cols matrix.
std::vector<float> lowrank_dense(const LowrankFactors& f, uint64_t rows, uint64_t cols);
// Factors held as a serving product (a PEFT LoRA tenant is one).
std::unique_ptr<DeltaProduct> lowrank_product(uint64_t rows, uint64_t cols, LowrankFactors f);

void lowrank_encode(const LowrankParams& prm, std::string_view name, std::span<const float> delta, uint64_t rows,
                    uint64_t cols, const ValueType& vt, Encoded& out);
std::vector<float> lowrank_decode(const AttrReader& attrs, const PartSource& src, uint64_t rows, uint64_t cols,
                                  const ValueType& vt);
// The same factors held as a product (src/codec/delta_product.h).
std::unique_ptr<DeltaProduct> lowrank_product(const AttrReader& attrs, const PartSource& src, uint64_t rows,
                                              uint64_t cols, const ValueType& vt);

}  // namespace deltakit
