// Sparsifying stages (dare, topk) produce kept positions and their values; the next stage of a
// recipe (or "values" in the tensor's value dtype) stores the values, in position order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "src/codec/device_pass.h"
#include "src/core/dtype.h"

namespace deltakit {

class BlockEncoder;  // src/codec/stage.h
class PartSource;    // src/core/parts.h
struct AttrReader;   // src/core/parts.h
struct Recipe;       // src/codec/recipe.h

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
// The parameters of a recipe that is DARE alone (no further stage, no cherry): the fused pass a
// device can take over.
std::optional<DareParams> dare_alone(const Recipe& r);
// The block encoder of DARE alone with its pass done elsewhere (a device: src/gpu) over a tensor
// of n entries of `dtype`: only finish() is left, and it stores what the CPU's pass stores.
std::unique_ptr<BlockEncoder> dare_encoder_from_kept(const DareParams& prm, DType dtype, uint64_t n, DareKept kept);
// A stored tensor of n entries of `dtype` that is DARE alone, its payload read and checked as
// decoding does (for a device that applies it: src/gpu): its positions and its values as stored
// (in `dtype`); nullopt for any other stored tensor.
struct StoredDare {
  std::vector<uint64_t> positions;
  std::vector<uint8_t> values;
};
std::optional<StoredDare> stored_dare_alone(const AttrReader& a, const PartSource& src, uint64_t n, DType dtype);

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
