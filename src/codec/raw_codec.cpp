// The raw codec behind the codec interface: the exact delta (src/codec/raw.h), or nothing at all
// for a tensor the fine-tune left unchanged. It also stands in for a lossy recipe that cannot
// take a tensor (a non-float dtype, NaN/Inf in δ).
#include <cmath>
#include <cstring>

#include "src/codec/codec.h"
#include "src/codec/raw.h"
#include "src/core/error.h"

namespace deltakit {

namespace {

Part bytes_part(const std::string& name, std::span<const uint8_t> b) {
  return {name, PartKind::U8, {b.size()}, {b.begin(), b.end()}, ""};
}

// The parts of one stored tensor, every size checked against the base's shape before reading.
struct RawParts {
  std::vector<uint8_t> delta, exact_index, exact_bits, replacement;
  RawPayload payload;
};

void load_raw(const StoredTensor& st, const TensorView& base, RawParts& rp) {
  AttrReader a{st.attrs, st.where};
  RawPayload& p = rp.payload;
  const std::string mode = a.str("raw.mode");
  if (mode == "replace") {
    p.mode = RawMode::Replace;
    rp.replacement = st.src.read("raw.replacement", PartKind::U8, {base.bytes.size()}, "");
    p.replacement = rp.replacement;
    return;
  }
  if (mode != "delta") a.fail("unknown raw.mode \"" + mode + "\"");
  if (!dtype_is_float_decodable(base.dtype)) a.fail("a delta on a non-float tensor");
  p.mode = RawMode::Delta;
  rp.delta = st.src.read("raw.delta", PartKind::F32, {base.numel()}, "");
  p.delta = rp.delta;
  const uint64_t k = a.u64("raw.exact_patches", base.numel());
  if (k) {
    rp.exact_index = st.src.read("raw.exact_index", PartKind::U64, {k}, "");
    rp.exact_bits = st.src.read("raw.exact_bits", PartKind::U8, {k * dtype_size(base.dtype)}, "");
    for (uint64_t j = 0; j < k; ++j) {
      uint64_t i;
      std::memcpy(&i, rp.exact_index.data() + j * 8, 8);
      if (i >= base.numel()) a.fail("raw.exact_index entry " + std::to_string(i) + " is out of range");
    }
    p.exact_index = rp.exact_index;
    p.exact_bits = rp.exact_bits;
  }
}

class BaseCopy final : public BlockApplier {
 public:
  void apply(uint64_t, std::span<const uint8_t> base, float, std::span<uint8_t> out) override {
    std::memcpy(out.data(), base.data(), base.size());
  }
};

class RawTensorCodec final : public TensorCodec {
 public:
  const char* name() const override { return "raw"; }
  bool encodes(const TensorPair&) const override { return true; }  // the last resort: exact
  bool decodes(const Json& attrs) const override {
    const auto it = attrs.find("codec");
    return it != attrs.end() && it->is_string() && (*it == "raw" || *it == "unchanged");
  }

  EncodedTensor encode(const TensorPair& t) const override {
    EncodedTensor out;
    Json& attrs = out.encoded.attrs;
    std::vector<Part>& parts = out.encoded.parts;
    EncodeStats& st = out.stats;
    std::vector<uint8_t> delta;  // the fp32 delta's bytes, as the part stores them
    delta.reserve(t.ft.numel() * 4);
    // ‖δ‖² over the finite entries in 8 lanes (entry i to lane i mod 8): one running double was
    // a chain of dependent adds, a fifth of a raw compress
    double lanes[8] = {};
    uint64_t seen = 0;
    RawEncoded d = raw_encode(t.base, t.ft, [&](std::span<const float> block) {
      size_t j = 0;
      for (; j < block.size() && (seen + j) % 8; ++j)
        if (std::isfinite(block[j])) lanes[(seen + j) % 8] += double(block[j]) * block[j];
      for (; j + 8 <= block.size(); j += 8)
        for (int l = 0; l < 8; ++l) {
          const float x = block[j + l];
          lanes[l] += std::isfinite(x) ? double(x) * x : 0.0;
        }
      for (; j < block.size(); ++j)
        if (std::isfinite(block[j])) lanes[(seen + j) % 8] += double(block[j]) * block[j];
      seen += block.size();
      const auto* b = reinterpret_cast<const uint8_t*>(block.data());
      delta.insert(delta.end(), b, b + block.size_bytes());
    });
    for (double l : lanes) st.delta_sq += l;
    attrs["codec"] = d.mode == RawMode::Unchanged ? "unchanged" : "raw";
    attrs["recipe"] = "raw";
    if (d.mode == RawMode::Delta) {
      attrs["raw.mode"] = "delta";
      attrs["raw.exact_patches"] = d.exact_index.size();
      parts.push_back({"raw.delta", PartKind::F32, {t.ft.numel()}, std::move(delta), ""});
      if (!d.exact_index.empty()) {
        parts.push_back(
            {"raw.exact_index", PartKind::U64, {d.exact_index.size()}, bytes_of<uint64_t>(d.exact_index), ""});
        parts.push_back(bytes_part("raw.exact_bits", d.exact_bits));
      }
    } else if (d.mode == RawMode::Replace) {
      attrs["raw.mode"] = "replace";
      parts.push_back(bytes_part("raw.replacement", t.ft.bytes));
    }
    st.codec = attrs["codec"].get<std::string>();
    st.exact_patches = d.exact_index.size();
    st.nonfinite = d.nonfinite;
    st.rel_error = 0.0;
    return out;
  }

  void decode_add(const StoredTensor& st, const TensorView& base, float alpha, std::span<uint8_t> out) const override {
    if (st.attrs["codec"] == "unchanged") {
      std::memcpy(out.data(), base.bytes.data(), out.size());
      return;
    }
    RawParts rp;
    load_raw(st, base, rp);
    raw_apply(base, rp.payload, alpha, out);
  }

  // An unchanged tensor is the base's bytes, a block at a time like any other; the other raw
  // modes hold their payload whole anyway (decode_add).
  std::unique_ptr<BlockApplier> block_applier(const StoredTensor& st, const TensorView&) const override {
    if (st.attrs["codec"] != "unchanged") return nullptr;
    return std::make_unique<BaseCopy>();
  }

  // The δ apply realises, exactly: what it writes minus the base, both in fp32.
  std::unique_ptr<DeltaProduct> product(const StoredTensor& st, const TensorView& base) const override {
    if (st.attrs["codec"] == "unchanged") return nullptr;
    AttrReader a{st.attrs, st.where};
    if (!dtype_is_float_decodable(base.dtype)) a.fail("serving needs a float tensor");
    std::vector<uint8_t> out(base.bytes.size());
    decode_add(st, base, 1.0f, out);
    const uint64_t n = base.numel();
    std::vector<float> d(n), b(n);
    decode_to_f32(base.dtype, out, 0, d);
    decode_to_f32(base.dtype, base.bytes, 0, b);
    for (uint64_t i = 0; i < n; ++i) d[i] -= b[i];
    for (float x : d)
      if (!std::isfinite(x)) a.fail("the fine-tune's tensor holds NaN/Inf, which serving cannot add as a delta");
    const uint64_t cols = base.shape.empty() ? 1 : base.shape.back();
    return dense_product(cols ? n / cols : 0, cols, std::move(d));
  }
};

}  // namespace

const TensorCodec& raw_tensor_codec() {
  static const RawTensorCodec codec;
  return codec;
}

}  // namespace deltakit
