// BitDelta (Liu et al. 2024): δ̂ = α·sign(δ), one bit per entry plus a scale per unit.
//   signs: bit i = 1 iff δ_i >= 0 (the sign of 0 is +1, as the reference code does), packed
//          LSB first (src/codec/bits.h);
//   α:     mean |δ| over the unit's entries — the L2-optimal scale for fixed signs — per matrix
//          (the paper), per row, or per group of G consecutive entries;
//   levels M > 1 (the multi-level extension, algorithms.md §2): a unit's magnitudes, sorted, are split
//          into M blocks of equal count (block b holds ranks [b·c/M, (b+1)·c/M)), each entry's
//          magnitude becomes its block's mean; log2 M more bits per entry hold the block.
// Parts: bitdelta.signs uint8 [ceil(n/8)], bitdelta.scales float32 [units, M],
//        bitdelta.level uint8 [ceil(n·log2 M / 8)] (M > 1).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "src/codec/bitdelta_layout.h"
#include "src/codec/codec_types.h"
#include "src/codec/delta_product.h"
#include "src/codec/range_decoder.h"
#include "src/codec/value_stream.h"

namespace deltakit {

class BlockEncoder;  // src/codec/stage.h
struct Recipe;       // src/codec/recipe.h

struct BitDeltaParams {
  ScaleUnit scale = ScaleUnit::Matrix;
  uint64_t group = 0;   // ScaleUnit::Group only
  unsigned levels = 1;  // power of two, 1..256
};

void bitdelta_encode(const BitDeltaParams& prm, const ValueStream& s, Encoded& out);
// Its block form for a dense rows × cols stream with nothing skipped (one level only; else nullptr).
std::unique_ptr<BlockEncoder> bitdelta_block_encoder(const BitDeltaParams& prm, uint64_t rows, uint64_t cols);
// Per unit Σ|δ| (summed in the block encoder's float runs) and Σδ², once that encoder's statistics
// pass is done (views into it).
struct BitDeltaUnitSums {
  std::span<const double> abs, sq;
};
BitDeltaUnitSums bitdelta_unit_sums(const BlockEncoder& enc);
// BitDeltaLayout's sums (runs, pieces, sign bits) of what bitdelta_block_encoder's statistics
// pass saw: a split tensor's block (src/codec/split_pass.h). The encoder is spent after it.
BitDeltaSums take_bitdelta_sums(BlockEncoder& enc);
// A unit's one-level scale with some entries skipped (a cherry's): mean |δ| over the other
// `count`, as the unit's Σ|δ| less the skipped entries' (a cherry coder needs no pass over the rest).
float refit_scale(double unit_abs, double skipped_abs, uint64_t count);
// Its side of a cherry's fused pass over a dense rows × cols stream (one level only; else
// nullptr): src/codec/cherry_stream.h.
class CherryCoder;
std::unique_ptr<CherryCoder> bitdelta_cherry_coder(const BitDeltaParams& prm, uint64_t rows, uint64_t cols);
// The same stream a range at a time, holding only the stored bits and scales.
std::unique_ptr<RangeDecoder> bitdelta_decoder(const AttrReader& attrs, const PartSource& src, uint64_t count,
                                               std::span<const uint64_t> row_offsets);
std::vector<float> bitdelta_decode(const AttrReader& attrs, const PartSource& src, uint64_t count,
                                   std::span<const uint64_t> row_offsets);
// The same parts held as a product over a dense rows × cols stream (src/codec/delta_product.h).
// The layout of a dense rows × cols stream (src/codec/bitdelta_layout.h).
BitDeltaLayout bitdelta_layout(const BitDeltaParams& prm, uint64_t rows, uint64_t cols);
// The block encoder of bitdelta_block_encoder with its statistics pass done elsewhere: only
// finish() is left (second_pass() is false).
std::unique_ptr<BlockEncoder> bitdelta_encoder_from_sums(const BitDeltaParams& prm, const BitDeltaLayout& layout,
                                                         BitDeltaSums sums);
// A stored tensor that is one-level BitDelta alone over a dense rows × cols stream, its payload
// read and checked as decoding does (for a device that applies it: src/gpu); nullopt for any
// other stored tensor.
struct OneLevelBitDelta {
  ScaleUnit unit = ScaleUnit::Matrix;
  uint64_t group = 0;
  std::vector<uint8_t> signs;
  std::vector<float> scales;  // one per unit
};
std::optional<OneLevelBitDelta> stored_one_level_bitdelta(const AttrReader& a, const PartSource& src, uint64_t rows,
                                                          uint64_t cols);
// The parameters of a recipe that is one-level BitDelta alone (no sparsifier, no cherry).
std::optional<BitDeltaParams> one_level_bitdelta(const Recipe& r);

std::unique_ptr<DeltaProduct> bitdelta_product(const AttrReader& attrs, const PartSource& src, uint64_t rows,
                                               uint64_t cols);

}  // namespace deltakit
