#include "src/codec/bitdelta.h"

// GCC 12 warns inside its own AVX-512 headers (their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "src/codec/bits.h"
#include "src/codec/delta_product.h"
#include "src/codec/error_norms.h"
#include "src/codec/recipe.h"
#include "src/codec/sign_sums.h"
#include "src/codec/stage.h"
#include "src/core/half.h"

namespace deltakit {

namespace {
unsigned level_bits(unsigned levels) { return static_cast<unsigned>(std::countr_zero(levels)); }

// Sign bits of v (1 for v ≥ 0, so −0 packs as +), LSB first, into out, which holds zeros and
// starts at v's first bit (v starts on a byte).
void pack_signs_into(std::span<const float> v, uint8_t* out) {
  const uint64_t n = v.size();
  uint64_t i = 0;
#if defined(__AVX512F__)
  // 16 comparisons into a mask whose bit k is entry k: two bytes in the same LSB-first order
  for (; i + 16 <= n; i += 16) {
    const __mmask16 m = _mm512_cmp_ps_mask(_mm512_loadu_ps(v.data() + i), _mm512_setzero_ps(), _CMP_GE_OQ);
    out[i / 8] = static_cast<uint8_t>(m), out[i / 8 + 1] = static_cast<uint8_t>(m >> 8);
  }
#elif defined(__AVX2__)
  // 8 comparisons, their sign bits gathered into one byte in the same LSB-first order
  for (; i + 8 <= n; i += 8)
    out[i / 8] = static_cast<uint8_t>(
        _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(v.data() + i), _mm256_setzero_ps(), _CMP_GE_OQ)));
#endif
  for (; i + 8 <= n; i += 8) {
    unsigned b = 0;
    for (unsigned k = 0; k < 8; ++k) b |= static_cast<unsigned>(v[i + k] >= 0.0f) << k;
    out[i / 8] = static_cast<uint8_t>(b);
  }
  for (; i < n; ++i) out[i / 8] |= static_cast<uint8_t>(static_cast<unsigned>(v[i] >= 0.0f) << (i % 8));
}

std::vector<uint8_t> pack_signs(std::span<const float> v) {
  std::vector<uint8_t> out(packed_bytes(v.size(), 1), 0);
  pack_signs_into(v, out.data());
  return out;
}

// Σ|v| in a fixed order that vectorizes: 16 float lanes over runs of 4096 values, each run's
// lanes added into `sum` (a double; the float partials stay short, so the sum stays accurate).
// Called on consecutive pieces of a unit that each start on a run, it adds the same parts in
// the same order as one call on the whole unit.
void sum_abs_into(std::span<const float> v, double& sum, std::vector<float>* runs = nullptr) {
  constexpr uint64_t kLanes = BitDeltaLayout::kAbsLanes, kRun = BitDeltaLayout::kAbsRun;
  for (uint64_t r = 0; r < v.size(); r += kRun) {
    const uint64_t e = std::min<uint64_t>(v.size(), r + kRun);
    float lane[kLanes] = {};
    uint64_t i = r;
#if defined(__AVX512F__)
    // the 16 lanes in one register (GCC 12 turned the plain loop into scalar adds and shuffles)
    static_assert(kLanes == 16);
    __m512 acc = _mm512_setzero_ps();
    for (; i + kLanes <= e; i += kLanes) acc = _mm512_add_ps(acc, _mm512_abs_ps(_mm512_loadu_ps(v.data() + i)));
    _mm512_storeu_ps(lane, acc);
#elif defined(__AVX2__)
    // lanes 0-7 and 8-15 in two registers: the same adds in the same order
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (; i + kLanes <= e; i += kLanes) {
      lo = _mm256_add_ps(lo, _mm256_and_ps(_mm256_loadu_ps(v.data() + i), abs_mask));
      hi = _mm256_add_ps(hi, _mm256_and_ps(_mm256_loadu_ps(v.data() + i + 8), abs_mask));
    }
    _mm256_storeu_ps(lane, lo), _mm256_storeu_ps(lane + 8, hi);
#else
    for (; i + kLanes <= e; i += kLanes)
      for (uint64_t l = 0; l < kLanes; ++l) lane[l] += std::fabs(v[i + l]);
#endif
    for (; i < e; ++i) lane[i % kLanes] += std::fabs(v[i]);
    float part = 0;
    for (uint64_t l = 0; l < kLanes; ++l) part += lane[l];
    sum += part;
    if (runs) runs->push_back(part);
  }
}

double sum_abs(std::span<const float> v) {
  double sum = 0;
  sum_abs_into(v, sum);
  return sum;
}

// Sign bits of v for stream positions [first, first + v.size()) into out (the whole stream's
// bits, zeros where not yet written), from any bit position.
void pack_signs_at(std::span<const float> v, uint64_t first, uint8_t* out) {
  uint64_t k = 0;
  for (; k < v.size() && (first + k) % 8; ++k)
    out[(first + k) / 8] |= static_cast<uint8_t>(static_cast<unsigned>(v[k] >= 0.0f) << ((first + k) % 8));
  pack_signs_into(v.subspan(k), out + (first + k) / 8);
}

void set_one_level_attrs(const BitDeltaParams& prm, uint64_t units, Encoded& out) {
  out.attrs["bitdelta.scale"] = scale_unit_name(prm.scale);
  out.attrs["bitdelta.group"] = prm.scale == ScaleUnit::Group ? prm.group : 0;
  out.attrs["bitdelta.levels"] = 1u;  // unsigned, as bitdelta_encode stores it
  out.attrs["bitdelta.units"] = units;
}

ScaleUnit parse_unit(const AttrReader& a) {
  std::string s = a.str("bitdelta.scale");
  if (s == "matrix") return ScaleUnit::Matrix;
  if (s == "row") return ScaleUnit::Row;
  if (s == "group") return ScaleUnit::Group;
  a.fail("attribute 'bitdelta.scale' is \"" + s + "\", expected matrix, row or group");
}
}  // namespace

namespace {
// One level, nothing skipped, and a reconstruction to write (the cherry pass scores against the
// chain alone): per unit its scale, then, while the unit is still in cache, its sign bits, δ̂ and
// the error against it (src/codec/error_norms.h: the sums a decoded copy would give). Without a
// reconstruction to write, BitDeltaBlockEncoder below does it in one pass.
void encode_one_level(const ValueStream& s, std::span<const uint64_t> units, std::vector<float>& scales,
                      std::vector<uint8_t>& signs, Encoded& out) {
  const uint64_t U = units.size() - 1;
  constexpr uint64_t kBlock = 2048;
  float recon[kBlock];
  ErrorLanes lanes;
  bool aligned = true;  // every unit starts on a byte of sign bits: pack them in the same pass
  for (uint64_t u = 0; u < U; ++u) aligned &= units[u] % 8 == 0;
  for (uint64_t u = 0; u < U; ++u) {
    const uint64_t ub = units[u], ue = units[u + 1];
    scales[u] =
        ue > ub ? static_cast<float>(sum_abs(s.values.subspan(ub, ue - ub)) / static_cast<double>(ue - ub)) : 0.0f;
    const float pos = scales[u], neg = -scales[u];
    for (uint64_t b = ub; b < ue; b += kBlock) {
      const uint64_t m = std::min(kBlock, ue - b);
      for (uint64_t k = 0; k < m; ++k) recon[k] = s.values[b + k] >= 0.0f ? pos : neg;
      lanes.add(s.values, b, b + m, recon);
      if (s.recon_out) std::copy(recon, recon + m, s.recon_out + b);
      if (aligned) pack_signs_into(s.values.subspan(b, m), signs.data() + b / 8);
    }
  }
  if (!aligned) signs = pack_signs(s.values);
  const ErrorNorms norms = lanes.sums();
  out.error_measured = true, out.err_sq = norms.err_sq, out.delta_sq = norms.delta_sq;
  out.recon_written = s.recon_out != nullptr;
}
}  // namespace

float refit_scale(double unit_abs, double skipped_abs, uint64_t count) {
  return count ? static_cast<float>(std::max(0.0, unit_abs - skipped_abs) / static_cast<double>(count)) : 0.0f;
}

namespace {
// One level's scales and closed-form error from per-unit Σ|δ| and Σδ² (the block encoder's, or a
// device's: bitdelta_encoder_from_sums), then its parts.
void finish_one_level(const BitDeltaParams& prm, uint64_t n, std::span<const uint64_t> units,
                      std::span<const double> abs, std::span<const double> sq, std::vector<uint8_t> signs,
                      Encoded& out) {
  const uint64_t U = units.size() - 1;
  std::vector<float> scales(U);
  double err_sq = 0, delta_sq = 0;
  for (uint64_t u = 0; u < U; ++u) {
    const uint64_t len = units[u + 1] - units[u];
    scales[u] = len ? static_cast<float>(abs[u] / static_cast<double>(len)) : 0.0f;
    const double sc = scales[u];
    err_sq += std::max(0.0, sq[u] - 2 * sc * abs[u] + static_cast<double>(len) * sc * sc);
    delta_sq += sq[u];
  }
  set_one_level_attrs(prm, U, out);
  out.error_measured = true, out.err_sq = err_sq, out.delta_sq = delta_sq;
  out.add({"bitdelta.signs", PartKind::U8, {packed_bytes(n, 1)}, std::move(signs), ""});
  out.add({"bitdelta.scales", PartKind::F32, {U, 1}, bytes_of<float>(scales), ""});
}
}  // namespace

namespace {
// One-level BitDelta a block at a time, in one pass (Stage::block_encoder): per unit Σ|δ| and
// Σδ², and the sign bits, which do not depend on the scale. The error then has a closed form,
// Σ(|δ| − s)² = Σδ² − 2sΣ|δ| + n·s² per unit (the scale s as stored, in float), so no second
// pass and no decoded copy; it agrees with one to ~1e-8 relative (Σ|δ| is summed in float runs,
// as the scale is; tested). A block lies inside one unit, starting on a 4096-value run of it, or
// holds whole units, so Σ|δ| — hence the scales — are the same additions in the same order as
// sum_abs over each unit.
class BitDeltaBlockEncoder final : public BlockEncoder {
 public:
  // a stream of n values whose scale units start at `units` (units + 1 offsets, last n)
  BitDeltaBlockEncoder(const BitDeltaParams& prm, uint64_t n, std::vector<uint64_t> units)
      : prm_(prm),
        n_(n),
        units_(std::move(units)),
        abs_(units_.size() - 1, 0.0),
        sq_(units_.size() - 1, 0.0),
        signs_(packed_bytes(n_, 1), 0) {}

  uint64_t block_end(uint64_t first) const override {
    const uint64_t u = unit_at(first), ue = units_[u + 1];
    if (ue - units_[u] >= kBlock || first != units_[u]) return std::min(first + kBlock, ue);
    uint64_t end = ue;  // whole units, as many as fit
    for (uint64_t v = u + 1; v + 1 < units_.size() && units_[v + 1] - first <= kBlock; ++v) end = units_[v + 1];
    return end;
  }

  void stats(uint64_t first, std::span<const float> block) override {
    for (uint64_t i = first, end = first + block.size(); i < end;) {
      const uint64_t u = unit_at(i), e = std::min(end, units_[u + 1]);
      const std::span<const float> v = block.subspan(i - first, e - i);
      sum_abs_into(v, abs_[u], &run_abs_);
      const double sq = sum_sq(v);  // a block's part of a unit is one of its pieces (block_end)
      sq_[u] += sq;
      piece_sq_.push_back(sq);
      pack_signs_at(v, i, signs_.data());
      i = e;
    }
  }
  bool second_pass() const override { return false; }
  void encode(uint64_t, std::span<const float>) override {}

  void finish(Encoded& out) override { finish_one_level(prm_, n_, units_, abs_, sq_, std::move(signs_), out); }
  std::span<const double> unit_abs() const { return abs_; }
  std::span<const double> unit_sq() const { return sq_; }
  // BitDeltaLayout's sums of what the statistics pass saw (the encoder is spent after this)
  BitDeltaSums take_sums() { return {std::move(run_abs_), std::move(piece_sq_), std::move(signs_)}; }

 private:
  static constexpr uint64_t kBlock = BitDeltaLayout::kSqPiece;  // a multiple of sum_abs_into's runs

  // Σv² in 8 double lanes (a fixed order; vectorizes)
  static double sum_sq(std::span<const float> v) {
    constexpr uint64_t L = BitDeltaLayout::kSqLanes;
    double lane[L] = {};
    uint64_t i = 0;
    for (; i + L <= v.size(); i += L)
      for (uint64_t l = 0; l < L; ++l) lane[l] += static_cast<double>(v[i + l]) * v[i + l];
    for (; i < v.size(); ++i) lane[i % L] += static_cast<double>(v[i]) * v[i];
    double s = 0;
    for (double x : lane) s += x;
    return s;
  }
  uint64_t unit_at(uint64_t i) const {
    if (i < units_[cursor_]) cursor_ = 0;
    while (units_[cursor_ + 1] <= i) ++cursor_;
    return cursor_;
  }

  BitDeltaParams prm_;
  uint64_t n_;
  std::vector<uint64_t> units_;
  std::vector<double> abs_, sq_;
  std::vector<uint8_t> signs_;
  std::vector<float> run_abs_;    // each run's float sum, in order (BitDeltaLayout::runs)
  std::vector<double> piece_sq_;  // each piece's Σδ², in order (BitDeltaLayout::pieces)
  mutable uint64_t cursor_ = 0;
};
}  // namespace

namespace {
// Starts of `len`-value chunks of every unit, then n (BitDeltaLayout's runs and pieces).
std::vector<uint64_t> unit_chunks(std::span<const uint64_t> units, uint64_t len) {
  std::vector<uint64_t> starts;
  for (uint64_t u = 0; u + 1 < units.size(); ++u)
    for (uint64_t i = units[u]; i < units[u + 1]; i += len) starts.push_back(i);
  starts.push_back(units.back());
  return starts;
}

// finish() over statistics a device computed in BitDeltaLayout's order.
class BitDeltaSumsEncoder final : public BlockEncoder {
 public:
  BitDeltaSumsEncoder(const BitDeltaParams& prm, const BitDeltaLayout& layout, BitDeltaSums sums)
      : prm_(prm), layout_(layout), sums_(std::move(sums)) {
    if (sums_.run_abs.size() + 1 != layout_.runs.size() || sums_.piece_sq.size() + 1 != layout_.pieces.size() ||
        sums_.signs.size() != packed_bytes(layout_.n, 1))
      throw std::logic_error("bitdelta_encoder_from_sums: the sums do not match the layout");
  }
  uint64_t block_end(uint64_t) const override { return layout_.n; }
  void stats(uint64_t, std::span<const float>) override {}
  bool second_pass() const override { return false; }
  void encode(uint64_t, std::span<const float>) override {}
  void finish(Encoded& out) override {
    const uint64_t U = layout_.units.size() - 1;
    std::vector<double> abs(U, 0.0), sq(U, 0.0);
    // runs and pieces lie inside units, in order: add each to its unit, as the CPU pass does
    for (uint64_t r = 0, u = 0; r + 1 < layout_.runs.size(); ++r) {
      while (layout_.units[u + 1] <= layout_.runs[r]) ++u;
      abs[u] += sums_.run_abs[r];
    }
    for (uint64_t p = 0, u = 0; p + 1 < layout_.pieces.size(); ++p) {
      while (layout_.units[u + 1] <= layout_.pieces[p]) ++u;
      sq[u] += sums_.piece_sq[p];
    }
    finish_one_level(prm_, layout_.n, layout_.units, abs, sq, std::move(sums_.signs), out);
  }

 private:
  BitDeltaParams prm_;
  BitDeltaLayout layout_;
  BitDeltaSums sums_;
};
}  // namespace

BitDeltaLayout bitdelta_layout(const BitDeltaParams& prm, uint64_t rows, uint64_t cols) {
  BitDeltaLayout l;
  l.n = rows * cols;
  l.units = unit_offsets(prm.scale, prm.group, l.n, dense_row_offsets(rows, cols));
  l.runs = unit_chunks(l.units, BitDeltaLayout::kAbsRun);
  l.pieces = unit_chunks(l.units, BitDeltaLayout::kSqPiece);
  return l;
}

std::unique_ptr<BlockEncoder> bitdelta_encoder_from_sums(const BitDeltaParams& prm, const BitDeltaLayout& layout,
                                                         BitDeltaSums sums) {
  return std::make_unique<BitDeltaSumsEncoder>(prm, layout, std::move(sums));
}

BitDeltaSums take_bitdelta_sums(BlockEncoder& enc) { return dynamic_cast<BitDeltaBlockEncoder&>(enc).take_sums(); }

BitDeltaUnitSums bitdelta_unit_sums(const BlockEncoder& enc) {
  const auto& e = dynamic_cast<const BitDeltaBlockEncoder&>(enc);
  return {e.unit_abs(), e.unit_sq()};
}

std::unique_ptr<BlockEncoder> bitdelta_block_encoder(const BitDeltaParams& prm, uint64_t rows, uint64_t cols) {
  if (prm.levels != 1) return nullptr;
  return std::make_unique<BitDeltaBlockEncoder>(
      prm, rows * cols, unit_offsets(prm.scale, prm.group, rows * cols, dense_row_offsets(rows, cols)));
}

void bitdelta_encode(const BitDeltaParams& prm, const ValueStream& s, Encoded& out) {
  const uint64_t n = s.values.size();
  const unsigned M = prm.levels;
  auto units = unit_offsets(prm.scale, prm.group, n, s.row_offsets);
  const uint64_t U = units.size() - 1;
  std::vector<float> scales(U * M, 0.0f);
  std::vector<uint16_t> level(M > 1 ? n : 0, 0);
  std::vector<uint8_t> signs;
  if (M == 1 && s.skip.empty() && !s.recon_out && n > 0) {  // the block form, over the whole stream
    BitDeltaBlockEncoder enc(prm, n, units);
    encode_in_blocks(enc, s.values, out);
    return;
  }
  if (M == 1 && s.skip.empty()) {
    signs.assign(packed_bytes(n, 1), 0);
    encode_one_level(s, units, scales, signs, out);
  } else {
    for (uint64_t u = 0; u < U; ++u) {
      const uint64_t b = units[u], e = units[u + 1];
      if (M == 1) {  // the unit's Σ|δ| as the block encoder sums it, less the skipped entries'
        double skipped = 0;
        uint64_t cnt = e - b;
        for (uint64_t i = b; i < e; ++i)
          if (s.skip[i]) skipped += std::fabs(s.values[i]), --cnt;
        scales[u] = refit_scale(sum_abs(s.values.subspan(b, e - b)), skipped, cnt);
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
    signs = pack_signs(s.values);
  }
  out.attrs["bitdelta.scale"] = scale_unit_name(prm.scale);
  out.attrs["bitdelta.group"] = prm.scale == ScaleUnit::Group ? prm.group : 0;
  out.attrs["bitdelta.levels"] = M;
  out.attrs["bitdelta.units"] = U;
  out.add({"bitdelta.signs", PartKind::U8, {packed_bytes(n, 1)}, std::move(signs), ""});
  out.add({"bitdelta.scales", PartKind::F32, {U, M}, bytes_of<float>(scales), ""});
  if (M > 1) {
    const unsigned w = level_bits(M);
    out.add({"bitdelta.level", PartKind::U8, {packed_bytes(n, w)}, pack_fields(level, w), ""});
  }
}

namespace {
// The stored parts of one bitdelta tensor, every size and value checked.
struct BitDeltaPayload {
  ScaleUnit unit = ScaleUnit::Matrix;
  uint64_t group = 0;
  unsigned M = 1, w = 0;        // levels, bits of a level field
  std::vector<uint64_t> units;  // unit boundaries over the stream
  std::vector<uint8_t> signs, level;
  std::vector<float> scales;  // [units, M]
  // value i of the stream, with its unit u
  float value(uint64_t i, uint64_t u) const {
    const uint32_t mag = f32_bits(scales[u * M + (M > 1 ? packed_field(level.data(), i, w) : 0)]);
    // the sign is random: set the float's sign bit arithmetically, never branch on it
    return f32_from_bits(mag | ((~static_cast<uint32_t>(signs[i / 8] >> (i % 8)) & 1u) << 31));
  }
};

BitDeltaPayload load_bitdelta(const AttrReader& a, const PartSource& src, uint64_t n,
                              std::span<const uint64_t> row_offsets) {
  const ScaleUnit unit = parse_unit(a);
  const uint64_t group = a.u64("bitdelta.group", uint64_t{1} << 40);
  if (unit == ScaleUnit::Group && group == 0) a.fail("attribute 'bitdelta.group' must be positive");
  const uint64_t levels = a.u64("bitdelta.levels", 256);
  if (levels == 0 || !std::has_single_bit(levels)) a.fail("attribute 'bitdelta.levels' must be a power of two");
  BitDeltaPayload p;
  p.unit = unit, p.group = group;
  p.M = static_cast<unsigned>(levels);
  p.w = level_bits(p.M);
  p.units = unit_offsets(unit, group, n, row_offsets);
  const uint64_t U = p.units.size() - 1;
  if (a.u64("bitdelta.units", uint64_t{1} << 48) != U) a.fail("attribute 'bitdelta.units' does not match the shape");
  p.signs = src.read("bitdelta.signs", PartKind::U8, {packed_bytes(n, 1)}, "");
  p.scales = elements_of<float>(src.read("bitdelta.scales", PartKind::F32, {U, p.M}, ""));
  for (float f : p.scales)
    if (!std::isfinite(f)) a.fail("bitdelta.scales holds a non-finite value");
  if (p.M > 1) p.level = src.read("bitdelta.level", PartKind::U8, {packed_bytes(n, p.w)}, "");
  return p;
}
}  // namespace

std::optional<OneLevelBitDelta> stored_one_level_bitdelta(const AttrReader& a, const PartSource& src, uint64_t rows,
                                                          uint64_t cols) {
  const Json& attrs = a.attrs;
  if (!attrs.contains("codec") || attrs["codec"] != "bitdelta" || !attrs.contains("bitdelta.levels") ||
      attrs["bitdelta.levels"] != 1)
    return std::nullopt;
  const std::vector<std::string> parts = src.names();
  if (parts.size() != 2 || !src.has("bitdelta.signs") || !src.has("bitdelta.scales")) return std::nullopt;
  BitDeltaPayload p = load_bitdelta(a, src, rows * cols, dense_row_offsets(rows, cols));
  return OneLevelBitDelta{p.unit, p.group, std::move(p.signs), std::move(p.scales)};
}

namespace {
// out[k − first] = ±scale (its magnitude bits `mag`) by sign bit k, for k in [i, e): branch-free; with
// AVX-512, 16 entries from two bytes of bits by a masked blend, with AVX2 8 from a byte (GCC 12
// leaves the plain loop scalar).
void decode_one_level(const uint8_t* signs, uint32_t mag, uint64_t i, uint64_t e, float* out, uint64_t first) {
  const auto one = [&](uint64_t k) {
    out[k - first] = f32_from_bits(mag | ((~static_cast<uint32_t>(signs[k / 8] >> (k % 8)) & 1u) << 31));
  };
#if defined(__AVX512F__)
  for (; i < e && i % 8; ++i) one(i);
  const __m512 pos = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(mag)));
  const __m512 neg = _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(mag | 0x80000000u)));
  for (; i + 16 <= e; i += 16) {
    uint16_t bits;
    std::memcpy(&bits, signs + i / 8, 2);
    _mm512_storeu_ps(out + (i - first), _mm512_mask_blend_ps(static_cast<__mmask16>(bits), neg, pos));
  }
#elif defined(__AVX2__)
  // 8 entries from a byte of bits: lane k takes bit k (AND, compare), then a blend
  for (; i < e && i % 8; ++i) one(i);
  const __m256 pos = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(mag)));
  const __m256 neg = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(mag | 0x80000000u)));
  const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  for (; i + 8 <= e; i += 8) {
    const __m256i set = _mm256_and_si256(_mm256_set1_epi32(signs[i / 8]), bit);
    const __m256 take = _mm256_castsi256_ps(_mm256_cmpeq_epi32(set, bit));
    _mm256_storeu_ps(out + (i - first), _mm256_blendv_ps(neg, pos, take));
  }
#endif
  for (; i < e; ++i) one(i);
}

// The stream a range at a time, from the stored bits and scales.
class BitDeltaRangeDecoder final : public RangeDecoder {
 public:
  explicit BitDeltaRangeDecoder(BitDeltaPayload p) : p_(std::move(p)) {}
  void decode(uint64_t first, uint64_t n, float* out) const override {
    const uint64_t end = first + n;
    // the unit holding `first` (units are sorted; an empty unit is stepped over below)
    uint64_t u = static_cast<uint64_t>(std::upper_bound(p_.units.begin(), p_.units.end(), first) - p_.units.begin());
    for (uint64_t i = first, e; i < end; i = e, ++u) {
      e = std::min(end, p_.units[u]);
      if (p_.M == 1) {
        decode_one_level(p_.signs.data(), f32_bits(p_.scales[u - 1]), i, e, out, first);
      } else {
        for (uint64_t k = i; k < e; ++k) out[k - first] = p_.value(k, u - 1);
      }
    }
  }

 private:
  BitDeltaPayload p_;
};
}  // namespace

std::unique_ptr<RangeDecoder> bitdelta_decoder(const AttrReader& a, const PartSource& src, uint64_t n,
                                               std::span<const uint64_t> row_offsets) {
  return std::make_unique<BitDeltaRangeDecoder>(load_bitdelta(a, src, n, row_offsets));
}

std::vector<float> bitdelta_decode(const AttrReader& a, const PartSource& src, uint64_t n,
                                   std::span<const uint64_t> row_offsets) {
  std::vector<float> out(n);
  bitdelta_decoder(a, src, n, row_offsets)->decode(0, n, out.data());
  return out;
}

// --- the product: Δx from the sign bits ----------------------------------------------------
// With one level, a unit's entries are ±α, so over the unit's part of a row
//   Σ_j δ̂_j x_j = α·(2·Σ_{bit j set} x_j − Σ_j x_j):
// the set sums come from the bits regrouped as nibbles of 16 rows × 4 columns, which index each
// input's table of 4-column subset sums (src/codec/sign_sums.h: one permute and one add per 16
// rows and 4 columns); Σ x is shared by every row. That needs the units to cut every row at the
// same columns, in fours (per matrix or per row on rows of 4k columns, or groups of 4k dividing
// the row); other layouts and more levels keep the stream's bits and decode a row at a time
// (DeltaProduct's default).
namespace {

class SignProduct final : public DeltaProduct {
 public:
  SignProduct(uint64_t rows, uint64_t cols, BitDeltaPayload p) : DeltaProduct(rows, cols), p_(std::move(p)) {
    if (p_.M == 1 && cols % 4 == 0) {
      if (p_.unit != ScaleUnit::Group)
        width_ = cols;
      else if (cols % p_.group == 0 && p_.group % 4 == 0)
        width_ = p_.group;
    }
    if (!width_) return;
    // nibbles: block b, group g -> 8 bytes, byte j = row 16b + j (low half), row 16b + j + 8 (high)
    nibbles_.assign((rows + 15) / 16 * (cols / 4) * 8, 0);
    for (uint64_t r = 0; r < rows; ++r)
      for (uint64_t k = 0; k < cols; ++k) {
        const uint64_t i = r * cols + k;
        const unsigned bit = (p_.signs[i / 8] >> (i % 8)) & 1u;
        nibbles_[((r / 16) * (cols / 4) + k / 4) * 8 + (r % 8)] |=
            static_cast<uint8_t>(bit << ((k % 4) + ((r % 16) >= 8 ? 4 : 0)));
      }
    p_.signs = {};  // the nibbles hold the same bits
  }

  void multiply_add(const float* x, int64_t M, float* y, unsigned threads) const override {
    if (!width_) return DeltaProduct::multiply_add(x, M, y, threads);
    const int64_t R = static_cast<int64_t>(rows_), K = static_cast<int64_t>(cols_), W = static_cast<int64_t>(width_);
    const int64_t segs = K / W, blocks = (R + 15) / 16;
    std::vector<float> all(static_cast<size_t>(M * segs));  // Σ x over each column segment, per input
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < segs; ++j) all[m * segs + j] = lane_sum(x + m * K + j * W, W);
    thread_local std::vector<float> tables;  // each input's subset-sum tables (reused)
    tables.resize(static_cast<size_t>(M * K * 4));
    for (int64_t m = 0; m < M; ++m) nibble_tables(x + m * K, K / 4, tables.data() + m * K * 4);
    const float* tab = tables.data();  // the caller's thread_local buffer, read by every thread below
    // inputs outermost: four inputs' tables (4·K·16 bytes) stay in cache while every row block
    // passes over them
    const int64_t mblocks = (M + 3) / 4;
#pragma omp parallel for schedule(static) \
    num_threads(std::max(1u, threads)) if (threads > 1 && R * K * M > (int64_t{1} << 23))
    for (int64_t t = 0; t < mblocks * blocks; ++t) {
      const int64_t m0 = (t / blocks) * 4, b = t % blocks;
      const int64_t r0 = b * 16, lanes = std::min<int64_t>(16, R - r0);
      const int count = static_cast<int>(std::min<int64_t>(4, M - m0));
      const float* in[4];
      for (int c = 0; c < count; ++c) in[c] = tab + (m0 + c) * K * 4;
      float s[4][16] = {}, set[4][16];
      for (int64_t j = 0; j < segs; ++j) {
        nibble_sums(nibbles_.data() + b * K * 2, in, count, j * W / 4, (j + 1) * W / 4, set);
        for (int c = 0; c < count; ++c) {
          const float sum = all[(m0 + c) * segs + j];
          for (int64_t i = 0; i < lanes; ++i) s[c][i] += p_.scales[unit(r0 + i, j)] * (2.0f * set[c][i] - sum);
        }
      }
      for (int c = 0; c < count; ++c)
        for (int64_t i = 0; i < lanes; ++i) y[(m0 + c) * R + r0 + i] += s[c][i];
    }
  }

  void decode_row(uint64_t r, float* out) const override {
    const uint64_t row0 = r * cols_;
    if (width_) {
      for (uint64_t k = 0; k < cols_; ++k) {
        const uint32_t mag = f32_bits(p_.scales[unit(static_cast<int64_t>(r), static_cast<int64_t>(k / width_))]);
        out[k] = f32_from_bits(mag | ((~held_bit(r, k) & 1u) << 31));
      }
      return;
    }
    for (uint64_t u = unit_of(row0), i = row0; i < row0 + cols_; ++u)
      for (; i < std::min(row0 + cols_, p_.units[u + 1]); ++i) out[i - row0] = p_.value(i, u);
  }
  uint64_t bytes() const override {
    return nibbles_.size() + p_.signs.size() + p_.level.size() + p_.scales.size() * 4 + p_.units.size() * 8;
  }
  std::string form() const override { return p_.M > 1 ? "signs+levels" : "signs"; }

 private:
  // bit (r, k) from the nibbles
  uint32_t held_bit(uint64_t r, uint64_t k) const {
    const uint8_t byte = nibbles_[((r / 16) * (cols_ / 4) + k / 4) * 8 + (r % 8)];
    return (byte >> ((k % 4) + ((r % 16) >= 8 ? 4 : 0))) & 1u;
  }
  // the unit of row r's column segment j (aligned layouts)
  uint64_t unit(int64_t r, int64_t j) const {
    switch (p_.unit) {
      case ScaleUnit::Matrix: return 0;
      case ScaleUnit::Row: return static_cast<uint64_t>(r);
      case ScaleUnit::Group: break;
    }
    return static_cast<uint64_t>(r) * (cols_ / width_) + static_cast<uint64_t>(j);
  }
  // the unit holding stream entry i (units are sorted; an empty unit is skipped over)
  uint64_t unit_of(uint64_t i) const {
    return static_cast<uint64_t>(std::upper_bound(p_.units.begin(), p_.units.end(), i) - p_.units.begin()) - 1;
  }
  BitDeltaPayload p_;
  uint64_t width_ = 0;            // columns per segment where units cut every row alike, in fours (0: not)
  std::vector<uint8_t> nibbles_;  // the sign bits regrouped (width_ > 0)
};

}  // namespace

std::unique_ptr<DeltaProduct> bitdelta_product(const AttrReader& a, const PartSource& src, uint64_t rows,
                                               uint64_t cols) {
  return std::make_unique<SignProduct>(rows, cols, load_bitdelta(a, src, rows * cols, dense_row_offsets(rows, cols)));
}

}  // namespace deltakit

// --- the stage ------------------------------------------------------------------------------
namespace deltakit {
namespace {

class BitDeltaStage final : public Stage {
 public:
  explicit BitDeltaStage(const BitDeltaParams& p) : p_(p) {}
  const BitDeltaParams& bitdelta_params() const { return p_; }
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
  std::unique_ptr<RangeDecoder> value_decoder(const AttrReader& a, const PartSource& src, uint64_t count,
                                              std::span<const uint64_t> rows) const override {
    return bitdelta_decoder(a, src, count, rows);
  }
  std::unique_ptr<DeltaProduct> value_product(const AttrReader& a, const PartSource& src, uint64_t rows,
                                              uint64_t cols) const override {
    return bitdelta_product(a, src, rows, cols);
  }
  std::unique_ptr<BlockEncoder> block_encoder(uint64_t rows, uint64_t cols) const override {
    return bitdelta_block_encoder(p_, rows, cols);
  }
  std::unique_ptr<CherryCoder> cherry_coder(uint64_t rows, uint64_t cols) const override {
    return bitdelta_cherry_coder(p_, rows, cols);
  }

 private:
  BitDeltaParams p_;
};

}  // namespace

std::optional<BitDeltaParams> one_level_bitdelta(const Recipe& r) {
  if (r.cherry || r.chain.size() != 1) return std::nullopt;
  const auto* b = dynamic_cast<const BitDeltaStage*>(r.chain[0].get());
  if (!b || b->bitdelta_params().levels != 1) return std::nullopt;
  return b->bitdelta_params();
}

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
