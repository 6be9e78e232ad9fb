// Encoding one tensor's fp32 delta with a (lossy) recipe, and decoding it back. The tensor's
// attributes carry "recipe" (canonical text, which decoding parses again to learn the chain),
// "codec" (stage names) and each stage's "<codec>.<key>" attributes; parts are named
// "<codec>.<what>". This is the lossy chain; src/codec/codec.h is the interface that compress,
// apply and merge call, over this chain and raw (which needs the two tensors' bytes, not δ).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "src/codec/bits.h"
#include "src/codec/codec_types.h"
#include "src/codec/delta_product.h"
#include "src/codec/error_norms.h"
#include "src/codec/range_decoder.h"
#include "src/codec/recipe.h"
#include "src/codec/score_cut.h"

namespace deltakit {

// The scope=model stage of a recipe as text ("" if none): tensors whose recipes share it spend
// one budget, which holds budget(N) entries for N elements in all.
std::string model_scope_key(const Recipe& r);
uint64_t model_scope_budget(const Recipe& r, uint64_t total_elements);
// The scores the model-wide cut ranks: |δ| for topk, cherry's s_i against the chain for cherry.
std::vector<float> model_scope_scores(const Recipe& r, const TensorDelta& t);

// Why `r` cannot encode a tensor of this dtype/shape ("" if it can).
std::string recipe_unsuitable(const Recipe& r, DType dtype, const std::vector<uint64_t>& shape);

Encoded encode_tensor(const Recipe& r, const TensorDelta& t);

// A sparsifier's positions as stored: "<prefix>.count", ".positions_coding", ".positions_bytes"
// and the part "<prefix>.positions".
void store_positions(Encoded& e, const std::string& prefix, CodedPositions c, uint64_t count);

// A cherry's parts: "cherry.positions" (with its attributes) and "cherry.values" in the value type,
// after the chain's parts.
void add_cherry_parts(Encoded& e, std::span<const uint64_t> kept, std::span<const float> values, uint64_t n,
                      const ValueType& vt);

// `where` prefixes errors ("adapter.h5: tensor 'x'"). Throws Error(AdapterInvalid) on anything
// inconsistent, including a non-finite decoded value.
std::vector<float> decode_tensor(const Json& attrs, const PartSource& src, const std::vector<uint64_t>& shape,
                                 DType dtype, const std::string& where);

// The same δ̂ a range at a time (src/codec/range_decoder.h), holding the stored form; every
// check but the non-finite one, which the caller makes on what it decodes (check_decoded_finite).
std::unique_ptr<RangeDecoder> load_tensor_decoder(const Json& attrs, const PartSource& src,
                                                  const std::vector<uint64_t>& shape, DType dtype,
                                                  const std::string& where);
// Error(AdapterInvalid) "<where>: decodes to a non-finite delta" if any value is NaN/Inf.
void check_decoded_finite(std::span<const float> decoded, const std::string& where);

// The same stored tensor held as a product in its compressed form (src/codec/delta_product.h),
// with every check decode_tensor makes.
std::unique_ptr<DeltaProduct> load_tensor_product(const Json& attrs, const PartSource& src,
                                                  const std::vector<uint64_t>& shape, DType dtype,
                                                  const std::string& where);

// ‖δ − δ̂‖ / ‖δ‖ (0 when δ = 0), by error_norms (src/codec/error_norms.h).
double relative_error(std::span<const float> delta, std::span<const float> recon);

}  // namespace deltakit
