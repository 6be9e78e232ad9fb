#include "src/codec/raw.h"

#include <cmath>
#include <cstring>

namespace deltakit {

namespace {
constexpr uint64_t kBlock = 4096;  // elements per fp32 block: fits L1 with three buffers
}

const char* raw_mode_name(RawMode m) {
  switch (m) {
    case RawMode::Unchanged: return "unchanged";
    case RawMode::Delta: return "delta";
    case RawMode::Replace: return "replace";
  }
  return "?";
}

RawDelta raw_encode(const TensorView& base, const TensorView& ft) {
  RawDelta r;
  if (base.bytes.size() == ft.bytes.size() &&
      std::memcmp(base.bytes.data(), ft.bytes.data(), ft.bytes.size()) == 0)
    return r;  // Unchanged
  if (!dtype_is_float_decodable(ft.dtype)) {
    r.mode = RawMode::Replace;
    r.replacement.assign(ft.bytes.begin(), ft.bytes.end());
    return r;
  }
  r.mode = RawMode::Delta;
  const uint64_t n = ft.numel();
  const size_t es = dtype_size(ft.dtype);
  r.delta.resize(n);
  float b[kBlock], f[kBlock], sum[kBlock];
  uint8_t recon[kBlock * 4];
  for (uint64_t first = 0; first < n; first += kBlock) {
    const uint64_t m = std::min(kBlock, n - first);
    decode_to_f32(base.dtype, base.bytes, first, {b, m});
    decode_to_f32(ft.dtype, ft.bytes, first, {f, m});
    float* d = r.delta.data() + first;
    for (uint64_t i = 0; i < m; ++i) {
      d[i] = f[i] - b[i];
      sum[i] = b[i] + d[i];  // exactly what raw_apply computes at α = 1
    }
    for (uint64_t i = 0; i < m; ++i) r.nonfinite += !std::isfinite(f[i]);
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

void raw_apply(const TensorView& base, const RawDelta& d, float alpha, std::span<uint8_t> out) {
  switch (d.mode) {
    case RawMode::Unchanged:
      std::memcpy(out.data(), base.bytes.data(), base.bytes.size());
      return;
    case RawMode::Replace:
      std::memcpy(out.data(), d.replacement.data(), d.replacement.size());
      return;
    case RawMode::Delta:
      break;
  }
  const uint64_t n = base.numel();
  const size_t es = dtype_size(base.dtype);
  float b[kBlock];
  for (uint64_t first = 0; first < n; first += kBlock) {
    const uint64_t m = std::min(kBlock, n - first);
    decode_to_f32(base.dtype, base.bytes, first, {b, m});
    const float* dd = d.delta.data() + first;
    if (alpha == 1.0f)
      for (uint64_t i = 0; i < m; ++i) b[i] = b[i] + dd[i];
    else
      for (uint64_t i = 0; i < m; ++i) b[i] = b[i] + alpha * dd[i];
    encode_from_f32(base.dtype, {b, m}, out.subspan(first * es, m * es));
  }
  if (alpha == 1.0f)
    for (size_t k = 0; k < d.exact_index.size(); ++k)
      std::memcpy(out.data() + d.exact_index[k] * es, d.exact_bits.data() + k * es, es);
}

}  // namespace deltakit
