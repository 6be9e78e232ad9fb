#include "src/codec/raw.h"

#include <cmath>
#include <cstring>

#include "src/codec/stage.h"

namespace deltakit {

namespace {
constexpr uint64_t kBlock = 4096;  // elements per fp32 block: a few buffers fit in L1/L2
}

const char* raw_mode_name(RawMode m) {
  switch (m) {
    case RawMode::Unchanged: return "unchanged";
    case RawMode::Delta: return "delta";
    case RawMode::Replace: return "replace";
  }
  return "?";
}

RawEncoded raw_encode(const TensorView& base, const TensorView& ft, const F32Sink& delta_out) {
  RawEncoded r;
  if (base.bytes.size() == ft.bytes.size() && std::memcmp(base.bytes.data(), ft.bytes.data(), ft.bytes.size()) == 0)
    return r;  // Unchanged
  if (!dtype_is_float_decodable(ft.dtype)) {
    r.mode = RawMode::Replace;
    return r;
  }
  r.mode = RawMode::Delta;
  const uint64_t n = ft.numel();
  const size_t es = dtype_size(ft.dtype);
  float b[kBlock], f[kBlock], d[kBlock], sum[kBlock];
  uint8_t recon[kBlock * 4];
  for (uint64_t first = 0; first < n; first += kBlock) {
    const uint64_t m = std::min(kBlock, n - first);
    decode_to_f32(base.dtype, base.bytes, first, {b, m});
    decode_to_f32(ft.dtype, ft.bytes, first, {f, m});
    uint64_t bad = 0;
    for (uint64_t i = 0; i < m; ++i) {
      d[i] = f[i] - b[i];
      sum[i] = b[i] + d[i];  // exactly what raw_apply computes at α = 1
      bad += !std::isfinite(f[i]);
    }
    r.nonfinite += bad;
    delta_out({d, m});
    encode_from_f32(ft.dtype, {sum, m}, {recon, m * es});
    const uint8_t* want = ft.bytes.data() + first * es;
    if (std::memcmp(recon, want, m * es) == 0) continue;
    for (uint64_t i = 0; i < m; ++i) {
      if (std::memcmp(recon + i * es, want + i * es, es) != 0) {
        r.exact_index.push_back(first + i);
        r.exact_bits.insert(r.exact_bits.end(), want + i * es, want + (i + 1) * es);
      }
    }
  }
  return r;
}

void raw_apply(const TensorView& base, const RawPayload& p, float alpha, std::span<uint8_t> out) {
  switch (p.mode) {
    case RawMode::Unchanged: std::memcpy(out.data(), base.bytes.data(), base.bytes.size()); return;
    case RawMode::Replace: std::memcpy(out.data(), p.replacement.data(), p.replacement.size()); return;
    case RawMode::Delta: break;
  }
  add_scaled_delta(base, p.delta, alpha, out);
  const size_t es = dtype_size(base.dtype);
  if (alpha == 1.0f) {
    const uint64_t k = p.exact_index.size() / 8;
    for (uint64_t j = 0; j < k; ++j) {
      uint64_t i;
      std::memcpy(&i, p.exact_index.data() + j * 8, 8);
      std::memcpy(out.data() + i * es, p.exact_bits.data() + j * es, es);
    }
  }
}

}  // namespace deltakit

// --- the stage: raw in a recipe stands alone; its tensors are the raw TensorCodec's (codec.h) --
namespace deltakit {
namespace {

class RawStage final : public Stage {
 public:
  const char* name() const override { return "raw"; }
  StageRole role() const override { return StageRole::Raw; }
  std::string params() const override { return ""; }
};

}  // namespace

std::unique_ptr<Stage> make_raw_stage(StageArgs&, uint64_t) { return std::make_unique<RawStage>(); }

}  // namespace deltakit
