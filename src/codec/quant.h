// Round-to-nearest asymmetric min-max quantization in groups of G consecutive values:
//   lo, hi = min, max of the group (skipped entries excluded); step = (hi − lo)/(2^b − 1);
//   q = clamp(round((δ − lo)/step), 0, 2^b − 1); δ̂ = lo + q·step (q = 0, δ̂ = lo when step = 0).
// |δ − δ̂| <= step/2 for every entry of the group. b ∈ {2, 3, 4, 8}.
// Parts: quant.codes uint8 [ceil(n·b/8)] (LSB-first fields), quant.mins float32 [groups],
//        quant.steps float32 [groups].
#pragma once

#include <memory>
#include <optional>

#include "src/codec/codec_types.h"
#include "src/codec/delta_product.h"
#include "src/codec/device_pass.h"
#include "src/codec/range_decoder.h"
#include "src/codec/value_stream.h"

namespace deltakit {

class BlockEncoder;  // src/codec/stage.h
struct Recipe;       // src/codec/recipe.h

struct QuantParams {
  unsigned bits = 4;
  uint64_t group = 128;
};

void quant_encode(const QuantParams& prm, const ValueStream& s, Encoded& out);
// Its block form for a stream of n values with nothing skipped (nullptr unless each group starts
// on a byte of codes and fits a block).
std::unique_ptr<BlockEncoder> quant_block_encoder(const QuantParams& prm, uint64_t n);
// What quant_block_encoder's pass found, as a device returns it (a split tensor's block:
// src/codec/split_pass.h). The encoder is spent after it.
QuantGroups take_quant_groups(BlockEncoder& enc);
// The parameters of a recipe that is quant alone and takes the block form (the fused pass a
// device can take over).
std::optional<QuantParams> quant_alone(const Recipe& r);
// That block encoder with its pass done elsewhere (a device: src/gpu): only finish() is left.
std::unique_ptr<BlockEncoder> quant_encoder_from_groups(const QuantParams& prm, uint64_t n, QuantGroups groups);
// A stored tensor of n entries that is quant alone, its payload read and checked as decoding
// does (for a device that applies it); nullopt for any other stored tensor.
struct StoredQuant {
  unsigned bits = 4;
  uint64_t group = 128;
  std::vector<uint8_t> codes;
  std::vector<float> mins, steps;
};
std::optional<StoredQuant> stored_quant_alone(const AttrReader& a, const PartSource& src, uint64_t n);
// The same stream a range at a time, holding only the packed codes and group parameters.
std::unique_ptr<RangeDecoder> quant_decoder(const AttrReader& attrs, const PartSource& src, uint64_t count);
std::vector<float> quant_decode(const AttrReader& attrs, const PartSource& src, uint64_t count);
// The same parts held as a product over a dense rows × cols stream (src/codec/delta_product.h).
std::unique_ptr<DeltaProduct> quant_product(const AttrReader& attrs, const PartSource& src, uint64_t rows,
                                            uint64_t cols);

}  // namespace deltakit
