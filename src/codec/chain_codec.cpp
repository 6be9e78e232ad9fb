// The lossy codecs behind the codec interface: a recipe's chain (a sparsifier, a value coder,
// low rank) and its cherry modifier, encoded and decoded by src/codec/tensor_codec.h.
#include "src/codec/codec.h"
#include "src/codec/tensor_codec.h"
#include "src/core/error.h"

namespace deltakit {

namespace {

// δ̂'s block from the stored form, checked, added to the base's block.
class ChainBlockApplier final : public BlockApplier {
 public:
  ChainBlockApplier(std::unique_ptr<RangeDecoder> d, DType dtype, std::string where)
      : d_(std::move(d)), dtype_(dtype), where_(std::move(where)) {}
  void apply(uint64_t first, std::span<const uint8_t> base, float alpha, std::span<uint8_t> out) override {
    const uint64_t n = base.size() / dtype_size(dtype_);
    delta_.resize(n);
    d_->decode(first, n, delta_.data());
    check_decoded_finite(delta_, where_);
    add_scaled_delta(dtype_, base, delta_, alpha, out);
  }

 private:
  std::unique_ptr<RangeDecoder> d_;
  DType dtype_;
  std::string where_;
  std::vector<float> delta_;  // the block's δ̂ (reused)
};

class ChainTensorCodec final : public TensorCodec {
 public:
  const char* name() const override { return "chain"; }
  bool encodes(const TensorPair& t) const override { return t.prepared && t.prepared->lossy(*t.recipe); }
  bool decodes(const Json& attrs) const override { return !raw_tensor_codec().decodes(attrs); }

  EncodedTensor encode(const TensorPair& t) const override {
    const std::span<const float> delta = t.prepared->delta;
    EncodedTensor out;
    // the fused pass (no tensor-sized δ; its coder always measures the error) or the whole δ
    out.encoded = t.prepared->stream
                      ? encode_streamed(*t.recipe, t.base, t.ft, *t.prepared->stream, t.importance, t.cut, t.selection)
                      : encode_tensor(*t.recipe, chain_input(t));
    // the error is measured on what decoding will really produce: by the coder while it encoded
    // (src/codec/error_norms.h; one-level BitDelta by its closed form), or else on a decoded copy
    ErrorNorms norms{out.encoded.err_sq, out.encoded.delta_sq};
    if (!out.encoded.error_measured) {
      const std::vector<float> recon =
          decode_tensor(out.encoded.attrs, EncodedSource(out.encoded), t.ft.shape, t.ft.dtype, t.where);
      norms = error_norms(delta, recon);
    }
    out.stats.rel_error = norms.relative();
    out.stats.delta_sq = norms.delta_sq;
    out.stats.codec = out.encoded.attrs["codec"].get<std::string>();
    return out;
  }

  void decode_add(const StoredTensor& st, const TensorView& base, float alpha, std::span<uint8_t> out) const override {
    block_applier(st, base)->apply(0, base.bytes, alpha, out);
  }

  std::unique_ptr<BlockApplier> block_applier(const StoredTensor& st, const TensorView& base) const override {
    return std::make_unique<ChainBlockApplier>(load_tensor_decoder(st.attrs, st.src, base.shape, base.dtype, st.where),
                                               base.dtype, st.where);
  }

  std::unique_ptr<DeltaProduct> product(const StoredTensor& st, const TensorView& base) const override {
    return load_tensor_product(st.attrs, st.src, base.shape, base.dtype, st.where);
  }
};

}  // namespace

const TensorCodec& chain_tensor_codec() {
  static const ChainTensorCodec codec;
  return codec;
}

}  // namespace deltakit
