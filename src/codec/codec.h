// The codec interface: what every way of storing a tensor's delta implements, raw included.
// compress hands each tensor pair to encode_tensor_pair() and stores what comes back; apply and
// merge hand each stored tensor to decode_add_stored(). Neither knows a codec by name: a new
// codec is one file in src/codec/ implementing TensorCodec plus one line in codec.cpp's registry.
//
// Encoding starts from the two tensors, not from δ: raw needs the fine-tune's exact bits (it is
// bit-exact at α = 1), lossy codecs the fp32 δ, which prepare_delta() computes once per tensor.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "src/codec/cherry.h"
#include "src/codec/delta_product.h"
#include "src/codec/recipe.h"
#include "src/codec/score_cut.h"
#include "src/codec/tensor_codec.h"
#include "src/core/float_buffer.h"
#include "src/core/parts.h"
#include "src/core/tensor_view.h"

namespace deltakit {

// The δ a lossy recipe would encode, computed once: empty (and `fallback` saying why raw stands
// in) when the recipe cannot take this tensor; `changed` false when the two tensors are equal.
class BlockEncoder;  // src/codec/stage.h

struct PreparedDelta {
  bool changed = false;
  std::string fallback;  // why the recipe is replaced by raw ("" if it is not)
  FloatBuffer delta;     // ft − base in fp32, for a lossy recipe
  // Or, for a recipe whose coder takes δ a block at a time (the fused pass): that coder, its
  // statistics pass done here, and no tensor-sized δ; encoding computes δ's blocks again.
  std::shared_ptr<BlockEncoder> stream;
  // The base tensor's fingerprint (src/core/fingerprint.h), where the fused pass read it anyway.
  std::optional<uint64_t> base_fingerprint;
  bool lossy(const Recipe& r) const { return changed && !r.is_raw() && fallback.empty(); }
};
PreparedDelta prepare_delta(const Recipe& r, const TensorView& base, const TensorView& ft);
// The fused pass's first half whatever δ holds (prepare_delta stops at an unchanged pair or a
// NaN): the recipe's block encoder after its statistics pass, whether the pair differs, whether δ
// had a NaN/Inf, the base's fingerprint (unless not asked for); a null encoder where the recipe
// has no block form here.
struct StatsPass {
  std::shared_ptr<BlockEncoder> enc;
  bool changed = false, nonfinite = false;
  uint64_t base_fingerprint = 0;
};
StatsPass stats_pass(const Recipe& r, const TensorView& base, const TensorView& ft, bool fingerprint = true);
// Its first step alone: `changed` and the recipe's own fallback (another device's pass starts so).
PreparedDelta compare_pair(const Recipe& r, const TensorView& base, const TensorView& ft);
inline constexpr const char* kNonFiniteDelta = "the delta has NaN/Inf entries (raw carries them exactly)";
// The same for a δ known exactly (a LoRA's scale·B·A, in fp32); `ft` is its rounding (for raw).
PreparedDelta prepare_given_delta(const Recipe& r, const TensorView& ft, std::span<const float> delta);

// One tensor to encode: the pair, the recipe, and what a lossy recipe needs.
struct TensorPair {
  std::string name;
  TensorView base, ft;  // same dtype and shape (the caller's pairing check)
  const Recipe* recipe = nullptr;
  const PreparedDelta* prepared = nullptr;
  Importance importance;  // for cherry (loaded by the caller: codecs read no files)
  unsigned threads = 0;
  const ScoreCut* cut = nullptr;  // the model-wide cut, for a recipe with a scope=model stage
  // what that cut keeps of this tensor, where its search held it (a cherry then need not score again)
  const CutSelection* selection = nullptr;
  std::string where;  // names the tensor in errors ("out.h5: tensor 'x'")
};

// The fused pass's second half: δ's blocks from the pair again, encoded by prepared.stream (a
// cherry's selection takes the importance and, for scope=model, the cut).
Encoded encode_streamed(const Recipe& r, const TensorView& base, const TensorView& ft, BlockEncoder& enc,
                        const Importance& importance = {}, const ScoreCut* cut = nullptr,
                        const CutSelection* selection = nullptr);
// A cherry recipe's scores for the model-wide cut, from its fused pass's encoder (prepared.stream)
// after the statistics: one more read of δ's blocks, each block's scores and δ handed to `visit`.
void streamed_cherry_scores(
    const TensorView& base, const TensorView& ft, BlockEncoder& enc, const Importance& importance,
    const std::function<void(std::span<const float> scores, std::span<const float> delta)>& visit);

// The lossy chain's view of a pair: its prepared δ, importance, threads and cut.
TensorDelta chain_input(const TensorPair& t);

// What encoding found, for the per-tensor report.
struct EncodeStats {
  std::string codec;  // the stored "codec" attribute: "unchanged", "raw", "dare>bitdelta+cherry"
  uint64_t exact_patches = 0, nonfinite = 0;
  double rel_error = 0;  // ‖δ − δ̂‖ / ‖δ‖
  double delta_sq = 0;   // ‖δ‖² over the finite entries, to total the error over a model
};

struct EncodedTensor {
  Encoded encoded;  // attributes (codec, recipe, the codec's own) and parts
  EncodeStats stats;
};

// A tensor as an adapter stores it.
struct StoredTensor {
  const Json& attrs;
  const PartSource& src;
  std::string where;  // "file: tensor 'x'", for errors
};

// decode_add a block of entries at a time, the stored form held between blocks: apply's
// streaming pass, which never holds a tensor-sized δ̂ or output. Blocks may come in any order.
class BlockApplier {
 public:
  virtual ~BlockApplier() = default;
  // out = round_dtype(base + α·δ̂) over entries [first, first + n), where `base` and `out` hold
  // those n entries in the base's dtype; the same bytes decode_add writes there.
  virtual void apply(uint64_t first, std::span<const uint8_t> base, float alpha, std::span<uint8_t> out) = 0;
};

class TensorCodec {
 public:
  virtual ~TensorCodec() = default;
  virtual const char* name() const = 0;
  // Whether this codec encodes the pair (raw: exact or fallback; the chain: a lossy recipe).
  virtual bool encodes(const TensorPair& t) const = 0;
  // Whether a stored tensor is this codec's (by its attributes).
  virtual bool decodes(const Json& attrs) const = 0;
  virtual EncodedTensor encode(const TensorPair& t) const = 0;
  // out = round_dtype(base + α·δ̂) in base's dtype (out.size() == base.bytes.size()). Every size
  // and index of the stored parts is checked before use: Error(AdapterInvalid) naming `where`.
  virtual void decode_add(const StoredTensor& st, const TensorView& base, float alpha,
                          std::span<uint8_t> out) const = 0;
  // The same a block at a time, with every check of the stored parts made here (the non-finite
  // one on each block); nullptr where this stored form has no block path (decode_add whole).
  virtual std::unique_ptr<BlockApplier> block_applier(const StoredTensor& /*st*/, const TensorView& /*base*/) const {
    return nullptr;
  }
  // Serving: δ̂ held as a product over base's rows × cols (last dim = cols), in its compressed
  // form where the codec has one, with decode_add's checks; nullptr for an unchanged tensor.
  virtual std::unique_ptr<DeltaProduct> product(const StoredTensor& st, const TensorView& base) const = 0;
};

// The registry: every codec, in the order they are asked.
const std::vector<const TensorCodec*>& tensor_codecs();
EncodedTensor encode_tensor_pair(const TensorPair& t);
void decode_add_stored(const StoredTensor& st, const TensorView& base, float alpha, std::span<uint8_t> out);
std::unique_ptr<BlockApplier> block_applier_of_stored(const StoredTensor& st, const TensorView& base);
std::unique_ptr<DeltaProduct> product_of_stored(const StoredTensor& st, const TensorView& base);

// The codecs themselves (raw_codec.cpp, chain_codec.cpp).
const TensorCodec& raw_tensor_codec();
const TensorCodec& chain_tensor_codec();

}  // namespace deltakit
