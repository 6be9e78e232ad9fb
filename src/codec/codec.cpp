#include "src/codec/codec.h"

#include <algorithm>
#include <cstring>

#include "src/codec/tensor_codec.h"
#include "src/core/error.h"
#include "src/core/half.h"

namespace deltakit {

PreparedDelta prepare_delta(const Recipe& r, const TensorView& base, const TensorView& ft) {
  PreparedDelta p;
  p.changed = base.bytes.size() != ft.bytes.size() ||
              std::memcmp(base.bytes.data(), ft.bytes.data(), base.bytes.size()) != 0;
  p.fallback = p.changed ? recipe_unsuitable(r, ft.dtype, ft.shape) : "";
  if (!p.lossy(r)) return p;
  // fine-tune minus base, block by block: one tensor-sized buffer, not two
  const uint64_t n = ft.numel(), block = 1 << 14;
  p.delta.resize(n);
  float b[block];
  uint32_t nonfinite = 0;
  for (uint64_t first = 0; first < n; first += block) {
    const uint64_t m = std::min(block, n - first);
    std::span<float> d(p.delta.data() + first, m);
    decode_to_f32(ft.dtype, ft.bytes, first, d);
    decode_to_f32(base.dtype, base.bytes, first, {b, m});
    for (uint64_t k = 0; k < m; ++k) {
      d[k] -= b[k];
      nonfinite |= (f32_bits(d[k]) & 0x7f800000u) == 0x7f800000u;  // branch-free: vectorizes
    }
  }
  if (nonfinite) {
    p.fallback = "the delta has NaN/Inf entries (raw carries them exactly)";
    p.delta.clear();
  }
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

void decode_add_stored(const StoredTensor& st, const TensorView& base, float alpha, std::span<uint8_t> out) {
  for (const TensorCodec* c : tensor_codecs())
    if (c->decodes(st.attrs)) return c->decode_add(st, base, alpha, out);
  AttrReader{st.attrs, st.where}.fail("no codec reads a tensor stored as codec \"" +
                                      AttrReader{st.attrs, st.where}.str("codec") + "\"");
}

}  // namespace deltakit
