// Sparsifying stages (dare, topk) produce kept positions and their values; the next stage of a
// recipe (or "values" in the tensor's value dtype) stores the values, in position order.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace deltakit {

struct SparseSelection {
  std::vector<uint64_t> positions;  // sorted, distinct
  std::vector<float> values;        // one per position
};

// `skip` (empty, or one byte per element): entries a cherry modifier keeps, which the sparsifier
// must not keep.

// DARE (Yu et al. 2023): element i is dropped iff its Philox word < floor(p·2^32) (see
// src/core/philox.h), survivors multiplied by `rescale` (1/(1−p) for "auto", 1 when p = 1).
// Blocked and threaded; the result does not depend on block or thread count.
struct DareParams {
  double p = 0.9;
  bool rescale_auto = true;
  double rescale = 1.0;  // used when !rescale_auto
  uint64_t seed = 0;
  double effective_rescale() const;
};
SparseSelection dare_select(const DareParams& prm, std::string_view tensor_name, std::span<const float> delta,
                            std::span<const uint8_t> skip, unsigned threads = 0, uint64_t block = 1 << 16);

// Top-k by magnitude: k = floor(density·n) (mergekit's magnitude trim), the largest |δ| kept,
// ties broken toward the lower index; values unchanged.
// With scope=model the budget floor(density·N) is over every tensor of the model with this
// stage, by a cut the pipeline finds (src/pipeline/global_cut.h).
struct TopkParams {
  double density = 0.1;
  bool scope_model = false;
};
uint64_t topk_count(double density, uint64_t n);
SparseSelection topk_select(const TopkParams& prm, std::span<const float> delta, std::span<const uint8_t> skip);

// Row boundaries of a sparse stream: element j of the values belongs to row r iff
// offsets[r] <= j < offsets[r+1] (rows of `cols` elements of the dense tensor).
std::vector<uint64_t> sparse_row_offsets(std::span<const uint64_t> positions, uint64_t rows, uint64_t cols);

}  // namespace deltakit
