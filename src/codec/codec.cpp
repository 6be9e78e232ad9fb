#include "src/codec/codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "src/codec/stage.h"
#include "src/codec/tensor_codec.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace deltakit {

namespace {
// The coder of a recipe that can take this tensor's δ a block at a time: one value coder over the
// dense tensor or one sparsifier, no cherry (which needs the whole chain's reconstruction), a
// block form.
std::unique_ptr<BlockEncoder> block_encoder_for(const Recipe& r, const TensorView& ft) {
  if (r.cherry || r.chain.size() != 1) return nullptr;
  const uint64_t n = ft.numel(), cols = ft.shape.empty() ? 1 : ft.shape.back();
  if (n == 0 || cols == 0) return nullptr;
  const Stage& s = *r.chain[0];
  if (s.role() == StageRole::ValueCoder) return s.block_encoder(n / cols, cols);
  if (s.role() == StageRole::Sparsifier) return s.sparse_block_encoder(ft.name, ft.dtype, n);
  return nullptr;
}

// d = ft − base in fp32 for entries [first, first + d.size()), base decoded into `scratch`;
// returns non-zero if an entry is not finite (both paths below compute δ by this one loop).
uint32_t delta_block(const TensorView& base, const TensorView& ft, uint64_t first, std::span<float> d, float* scratch) {
  const uint64_t m = d.size();
  decode_to_f32(ft.dtype, ft.bytes, first, d);
  decode_to_f32(base.dtype, base.bytes, first, {scratch, m});
  uint32_t nonfinite = 0;
  for (uint64_t k = 0; k < m; ++k) {
    d[k] -= scratch[k];
    nonfinite |= (f32_bits(d[k]) & 0x7f800000u) == 0x7f800000u;  // branch-free: vectorizes
  }
  return nonfinite;
}

// fn(first, δ[first, end)) for the blocks `enc` draws; returns whether any entry was not finite.
template <class Fn>
bool for_each_delta_block(const TensorView& base, const TensorView& ft, const BlockEncoder& enc, Fn fn) {
  const uint64_t n = ft.numel();
  std::vector<float> d, b;
  uint32_t nonfinite = 0;
  for (uint64_t first = 0, end; first < n; first = end) {
    end = enc.block_end(first);
    const uint64_t m = end - first;
    if (d.size() < m) d.resize(m), b.resize(m);
    nonfinite |= delta_block(base, ft, first, {d.data(), m}, b.data());
    fn(first, std::span<const float>(d.data(), m));
  }
  return nonfinite != 0;
}
}  // namespace

Encoded encode_streamed(const Recipe& r, const TensorView& base, const TensorView& ft, BlockEncoder& enc) {
  if (enc.second_pass())
    for_each_delta_block(base, ft, enc, [&](uint64_t first, std::span<const float> d) { enc.encode(first, d); });
  Encoded e;
  enc.finish(e);
  e.attrs["recipe"] = r.canonical();  // after the coder's own, as encode_chain stores them
  e.attrs["codec"] = r.codec_names();
  return e;
}

PreparedDelta compare_pair(const Recipe& r, const TensorView& base, const TensorView& ft) {
  PreparedDelta p;
  p.changed =
      base.bytes.size() != ft.bytes.size() || std::memcmp(base.bytes.data(), ft.bytes.data(), base.bytes.size()) != 0;
  p.fallback = p.changed ? recipe_unsuitable(r, ft.dtype, ft.shape) : "";
  return p;
}

PreparedDelta prepare_delta(const Recipe& r, const TensorView& base, const TensorView& ft) {
  PreparedDelta p = compare_pair(r, base, ft);
  if (!p.lossy(r)) return p;
  if (std::unique_ptr<BlockEncoder> enc = block_encoder_for(r, ft)) {
    // the fused pass's first half: the finite check and the coder's statistics, block by block
    const bool nonfinite =
        for_each_delta_block(base, ft, *enc, [&](uint64_t first, std::span<const float> d) { enc->stats(first, d); });
    if (nonfinite)
      p.fallback = kNonFiniteDelta;
    else
      p.stream = std::move(enc);
    return p;
  }
  // fine-tune minus base, block by block: one tensor-sized buffer, not two
  const uint64_t n = ft.numel(), block = 1 << 14;
  p.delta.resize(n);
  float b[block];
  uint32_t nonfinite = 0;
  for (uint64_t first = 0; first < n; first += block) {
    const uint64_t m = std::min(block, n - first);
    nonfinite |= delta_block(base, ft, first, {p.delta.data() + first, m}, b);
  }
  if (nonfinite) {
    p.fallback = kNonFiniteDelta;
    p.delta.clear();
  }
  return p;
}

PreparedDelta prepare_given_delta(const Recipe& r, const TensorView& ft, std::span<const float> delta) {
  PreparedDelta p;
  bool nonfinite = false;
  for (float x : delta) {
    p.changed |= x != 0.0f;
    nonfinite |= !std::isfinite(x);
  }
  p.fallback = p.changed ? recipe_unsuitable(r, ft.dtype, ft.shape) : "";
  if (p.fallback.empty() && nonfinite) p.fallback = kNonFiniteDelta;
  if (p.lossy(r)) p.delta.assign(delta.begin(), delta.end());
  return p;
}

TensorDelta chain_input(const TensorPair& t) {
  return {t.name, t.ft.dtype, t.ft.shape, t.prepared->delta, t.importance, t.threads, t.cut};
}

// --- the registry: a new codec adds its line here --------------------------------------------
const std::vector<const TensorCodec*>& tensor_codecs() {
  static const std::vector<const TensorCodec*> all = {&chain_tensor_codec(), &raw_tensor_codec()};
  return all;
}

EncodedTensor encode_tensor_pair(const TensorPair& t) {
  for (const TensorCodec* c : tensor_codecs())
    if (c->encodes(t)) return c->encode(t);
  throw std::logic_error("no codec encodes tensor '" + t.name + "'");
}

namespace {
// A source that remembers which parts were read, so a stored part no codec reads (a delta an
// "unchanged" tensor carries, a dataset a crafted file adds) is an error, not silently dropped.
class ReadRecorder final : public PartSource {
 public:
  explicit ReadRecorder(const PartSource& s) : s_(s) {}
  bool has(const std::string& part) const override { return s_.has(part); }
  std::vector<std::string> names() const override { return s_.names(); }
  std::vector<uint8_t> read(const std::string& part, PartKind kind, const std::vector<uint64_t>& dims,
                            const std::string& encoding) const override {
    read_.insert(part);
    return s_.read(part, kind, dims, encoding);
  }
  const std::set<std::string>& parts_read() const { return read_; }

 private:
  const PartSource& s_;
  mutable std::set<std::string> read_;
};
}  // namespace

namespace {
// Runs `use` on the codec that reads this stored tensor; every stored part must be read.
template <class Use>
auto with_stored_codec(const StoredTensor& st, Use use) {
  const AttrReader a{st.attrs, st.where};
  for (const TensorCodec* c : tensor_codecs()) {
    if (!c->decodes(st.attrs)) continue;
    const ReadRecorder src(st.src);
    auto result = use(*c, StoredTensor{st.attrs, src, st.where});
    for (const std::string& part : st.src.names())
      if (!src.parts_read().count(part))
        a.fail("stores dataset '" + part + "', which its codec \"" + a.str("codec") + "\" does not read");
    return result;
  }
  a.fail("no codec reads a tensor stored as codec \"" + a.str("codec") + "\"");
}
}  // namespace

void decode_add_stored(const StoredTensor& st, const TensorView& base, float alpha, std::span<uint8_t> out) {
  with_stored_codec(st, [&](const TensorCodec& c, const StoredTensor& s) {
    c.decode_add(s, base, alpha, out);
    return 0;
  });
}

std::unique_ptr<DeltaProduct> product_of_stored(const StoredTensor& st, const TensorView& base) {
  return with_stored_codec(st, [&](const TensorCodec& c, const StoredTensor& s) { return c.product(s, base); });
}

}  // namespace deltakit
