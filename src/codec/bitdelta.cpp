#include "src/codec/bitdelta.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "src/codec/bits.h"
#include "src/codec/stage.h"
#include "src/core/half.h"

namespace deltakit {

namespace {
unsigned level_bits(unsigned levels) { return static_cast<unsigned>(std::countr_zero(levels)); }

std::vector<uint8_t> pack_signs(std::span<const float> v) {
  const uint64_t n = v.size();
  std::vector<uint8_t> out(packed_bytes(n, 1), 0);
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    unsigned b = 0;
    for (unsigned k = 0; k < 8; ++k) b |= static_cast<unsigned>(v[i + k] >= 0.0f) << k;
    out[i / 8] = static_cast<uint8_t>(b);
  }
  for (; i < n; ++i) out[i / 8] |= static_cast<uint8_t>(static_cast<unsigned>(v[i] >= 0.0f) << (i % 8));
  return out;
}

ScaleUnit parse_unit(const AttrReader& a) {
  std::string s = a.str("bitdelta.scale");
  if (s == "matrix") return ScaleUnit::Matrix;
  if (s == "row") return ScaleUnit::Row;
  if (s == "group") return ScaleUnit::Group;
  a.fail("attribute 'bitdelta.scale' is \"" + s + "\", expected matrix, row or group");
}
}  // namespace

void bitdelta_encode(const BitDeltaParams& prm, const ValueStream& s, Encoded& out) {
  const uint64_t n = s.values.size();
  const unsigned M = prm.levels;
  auto units = unit_offsets(prm.scale, prm.group, n, s.row_offsets);
  const uint64_t U = units.size() - 1;
  std::vector<float> scales(U * M, 0.0f);
  std::vector<uint16_t> level(M > 1 ? n : 0, 0);
  for (uint64_t u = 0; u < U; ++u) {
    const uint64_t b = units[u], e = units[u + 1];
    if (M == 1) {
      double sum = 0;
      uint64_t cnt = 0;
      if (s.skip.empty()) {
        float part = 0;  // float partial sums in chunks keep this loop vectorized
        for (uint64_t i = b; i < e; ++i) {
          part += std::fabs(s.values[i]);
          if (((i - b) & 4095) == 4095) sum += part, part = 0;
        }
        sum += part;
        cnt = e - b;
      } else {
        for (uint64_t i = b; i < e; ++i)
          if (!s.skip[i]) sum += std::fabs(s.values[i]), ++cnt;
      }
      scales[u] = cnt ? static_cast<float>(sum / static_cast<double>(cnt)) : 0.0f;
      continue;
    }
    std::vector<std::pair<float, uint64_t>> mags;
    mags.reserve(e - b);
    for (uint64_t i = b; i < e; ++i)
      if (!s.skipped(i)) mags.push_back({std::fabs(s.values[i]), i});
    std::sort(mags.begin(), mags.end());
    const uint64_t c = mags.size();
    for (unsigned blk = 0; blk < M; ++blk) {
      const uint64_t lo = c * blk / M, hi = c * (blk + 1) / M;
      double sum = 0;
      for (uint64_t t = lo; t < hi; ++t) sum += mags[t].first, level[mags[t].second] = static_cast<uint16_t>(blk);
      scales[u * M + blk] = hi > lo ? static_cast<float>(sum / static_cast<double>(hi - lo)) : 0.0f;
    }
  }
  out.attrs["bitdelta.scale"] = scale_unit_name(prm.scale);
  out.attrs["bitdelta.group"] = prm.scale == ScaleUnit::Group ? prm.group : 0;
  out.attrs["bitdelta.levels"] = M;
  out.attrs["bitdelta.units"] = U;
  out.add({"bitdelta.signs", PartKind::U8, {packed_bytes(n, 1)}, pack_signs(s.values), ""});
  out.add({"bitdelta.scales", PartKind::F32, {U, M}, bytes_of<float>(scales), ""});
  if (M > 1) {
    const unsigned w = level_bits(M);
    out.add({"bitdelta.level", PartKind::U8, {packed_bytes(n, w)}, pack_fields(level, w), ""});
  }
}

std::vector<float> bitdelta_decode(const AttrReader& a, const PartSource& src, uint64_t n,
                                   std::span<const uint64_t> row_offsets) {
  const ScaleUnit unit = parse_unit(a);
  const uint64_t group = a.u64("bitdelta.group", uint64_t{1} << 40);
  if (unit == ScaleUnit::Group && group == 0) a.fail("attribute 'bitdelta.group' must be positive");
  const uint64_t levels = a.u64("bitdelta.levels", 256);
  if (levels == 0 || !std::has_single_bit(levels)) a.fail("attribute 'bitdelta.levels' must be a power of two");
  const unsigned M = static_cast<unsigned>(levels);
  auto units = unit_offsets(unit, group, n, row_offsets);
  const uint64_t U = units.size() - 1;
  if (a.u64("bitdelta.units", uint64_t{1} << 48) != U) a.fail("attribute 'bitdelta.units' does not match the shape");
  auto signs = src.read("bitdelta.signs", PartKind::U8, {packed_bytes(n, 1)}, "");
  auto scales = elements_of<float>(src.read("bitdelta.scales", PartKind::F32, {U, M}, ""));
  for (float f : scales)
    if (!std::isfinite(f)) a.fail("bitdelta.scales holds a non-finite value");
  std::vector<uint8_t> level;
  const unsigned w = level_bits(M);
  if (M > 1) level = src.read("bitdelta.level", PartKind::U8, {packed_bytes(n, w)}, "");
  std::vector<float> out(n);
  for (uint64_t u = 0; u < U; ++u) {
    // the sign is random: set the float's sign bit arithmetically, never branch on it
    if (M == 1) {
      const uint32_t mag = f32_bits(scales[u]);
      for (uint64_t i = units[u]; i < units[u + 1]; ++i)
        out[i] = f32_from_bits(mag | ((~static_cast<uint32_t>(signs[i / 8] >> (i % 8)) & 1u) << 31));
    } else {
      for (uint64_t i = units[u]; i < units[u + 1]; ++i) {
        const uint32_t mag = f32_bits(scales[u * M + packed_field(level.data(), i, w)]);
        out[i] = f32_from_bits(mag | ((~static_cast<uint32_t>(signs[i / 8] >> (i % 8)) & 1u) << 31));
      }
    }
  }
  return out;
}

}  // namespace deltakit

// --- the stage ------------------------------------------------------------------------------
namespace deltakit {
namespace {

class BitDeltaStage final : public Stage {
 public:
  explicit BitDeltaStage(const BitDeltaParams& p) : p_(p) {}
  const char* name() const override { return "bitdelta"; }
  StageRole role() const override { return StageRole::ValueCoder; }
  std::string params() const override {
    std::string out = ":scale=";
    out += p_.scale == ScaleUnit::Group ? "group:" + std::to_string(p_.group) : std::string(scale_unit_name(p_.scale));
    return out + ",levels=" + std::to_string(p_.levels);
  }
  bool fittable_scales() const override { return p_.levels == 1; }
  void encode_values(const ValueStream& s, Encoded& e) const override { bitdelta_encode(p_, s, e); }
  std::vector<float> decode_values(const AttrReader& a, const PartSource& src, uint64_t count,
                                   std::span<const uint64_t> rows) const override {
    return bitdelta_decode(a, src, count, rows);
  }

 private:
  BitDeltaParams p_;
};

}  // namespace

std::unique_ptr<Stage> make_bitdelta_stage(StageArgs& a, uint64_t) {
  BitDeltaParams p;
  std::string sc = a.take("scale", "matrix");
  if (sc == "matrix") {
    p.scale = ScaleUnit::Matrix;
  } else if (sc == "row") {
    p.scale = ScaleUnit::Row;
  } else if (sc.rfind("group:", 0) == 0) {
    p.scale = ScaleUnit::Group;
    p.group = a.parse_int("scale=group:G, G", sc.substr(6), 1, uint64_t{1} << 40);
  } else {
    a.fail("scale=" + sc + " is not matrix, row or group:G");
  }
  p.levels = static_cast<unsigned>(a.integer("levels", 1, 1, 256));
  if (!std::has_single_bit(p.levels)) a.fail("levels must be a power of two (1, 2, 4, ..., 256)");
  return std::make_unique<BitDeltaStage>(p);
}

}  // namespace deltakit
