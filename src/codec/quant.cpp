#include "src/codec/quant.h"

// GCC 12 warns inside its own AVX-512 headers (their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "src/codec/bits.h"
#include "src/codec/error_norms.h"
#include "src/codec/recipe.h"
#include "src/codec/stage.h"

namespace deltakit {

namespace {
// The stored parts of one quant tensor, every size and value checked.
struct QuantPayload {
  unsigned w = 4;
  uint64_t G = 128;
  std::vector<uint8_t> codes;
  std::vector<float> mins, steps;
  // values [first, first + n) of the stream into out, a group at a time
  void decode(uint64_t first, uint64_t n, float* out) const {
    for (uint64_t i = first; i < first + n;) {
      const uint64_t g = i / G, e = std::min(first + n, (g + 1) * G);
      const float lo = mins[g], step = steps[g];
      if (w == 8) {
        for (; i < e; ++i) out[i - first] = lo + static_cast<float>(codes[i]) * step;
      } else if (w == 4) {
        if (i & 1) out[i - first] = lo + static_cast<float>(codes[i / 2] >> 4) * step, ++i;
#if defined(__AVX512F__)
        // 32 codes from 16 bytes: the same lo + code·step (a multiply, then an add), interleaved back
        const __m512 vlo = _mm512_set1_ps(lo), vstep = _mm512_set1_ps(step);
        const __m512i even = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        const __m512i odd = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
        for (; i + 32 <= e; i += 32) {
          const __m512i v =
              _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes.data() + i / 2)));
          const __m512 a =
              _mm512_add_ps(vlo, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(15))), vstep));
          const __m512 b = _mm512_add_ps(vlo, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(v, 4)), vstep));
          _mm512_storeu_ps(out + (i - first), _mm512_permutex2var_ps(a, even, b));
          _mm512_storeu_ps(out + (i - first) + 16, _mm512_permutex2var_ps(a, odd, b));
        }
#elif defined(__AVX2__)
        // 16 codes from 8 bytes: low nibbles (even entries) and high nibbles (odd), each lo + code·step
        // (a multiply, then an add), interleaved within 128-bit halves and then across them
        const __m256 vlo = _mm256_set1_ps(lo), vstep = _mm256_set1_ps(step);
        for (; i + 16 <= e; i += 16) {
          const __m256i v =
              _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes.data() + i / 2)));
          const __m256 a =
              _mm256_add_ps(vlo, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15))), vstep));
          const __m256 b = _mm256_add_ps(vlo, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4)), vstep));
          const __m256 x = _mm256_unpacklo_ps(a, b), y = _mm256_unpackhi_ps(a, b);
          _mm256_storeu_ps(out + (i - first), _mm256_permute2f128_ps(x, y, 0x20));
          _mm256_storeu_ps(out + (i - first) + 8, _mm256_permute2f128_ps(x, y, 0x31));
        }
#endif
        for (; i + 2 <= e; i += 2) {
          const uint8_t b = codes[i / 2];
          out[i - first] = lo + static_cast<float>(b & 15u) * step;
          out[i + 1 - first] = lo + static_cast<float>(b >> 4) * step;
        }
        if (i < e) out[i - first] = lo + static_cast<float>(codes[i / 2] & 15u) * step, ++i;
      } else {
        for (; i < e; ++i) out[i - first] = lo + static_cast<float>(packed_field(codes.data(), i, w)) * step;
      }
    }
  }
};

QuantPayload load_quant(const AttrReader& a, const PartSource& src, uint64_t n) {
  const uint64_t bits = a.u64("quant.bits", 8);
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) a.fail("attribute 'quant.bits' must be 2, 3, 4 or 8");
  QuantPayload p;
  p.G = a.u64("quant.group", uint64_t{1} << 40);
  if (p.G == 0) a.fail("attribute 'quant.group' must be positive");
  const uint64_t groups = (n + p.G - 1) / p.G;
  p.w = static_cast<unsigned>(bits);
  p.codes = src.read("quant.codes", PartKind::U8, {packed_bytes(n, p.w)}, "");
  p.mins = elements_of<float>(src.read("quant.mins", PartKind::F32, {groups}, ""));
  p.steps = elements_of<float>(src.read("quant.steps", PartKind::F32, {groups}, ""));
  for (uint64_t g = 0; g < groups; ++g)
    if (!std::isfinite(p.mins[g]) || !std::isfinite(p.steps[g]) || p.steps[g] < 0)
      a.fail("quant.mins/steps hold a non-finite or negative value");
  return p;
}

}  // namespace

namespace {
// The smallest and largest of x[0, n), exactly as the scalar loop `lo = min(lo, x)` from +inf
// finds them (x finite), in 16 lanes the compiler vectorizes (the scalar loop was 60% of a quant
// encode). Only a ±0 result depends on the order (min keeps the first of equal values), so a
// group whose bound is zero takes the scalar loop.
void group_min_max(const float* x, uint64_t n, float& lo, float& hi) {
  constexpr unsigned L = 16;
  float l[L], h[L];
  for (unsigned k = 0; k < L; ++k) l[k] = INFINITY, h[k] = -INFINITY;
  uint64_t i = 0;
#ifdef __AVX512F__
  // the same lanes in two registers: GCC kept them in 16 scalar registers each (vminss, a third
  // of quant's pass). min_ps(x, l) is x < l ? x : l, ties and NaN alike (it returns l then).
  __m512 vl = _mm512_loadu_ps(l), vh = _mm512_loadu_ps(h);
  for (; i + L <= n; i += L) {
    const __m512 v = _mm512_loadu_ps(x + i);
    vl = _mm512_min_ps(v, vl), vh = _mm512_max_ps(v, vh);
  }
  _mm512_storeu_ps(l, vl), _mm512_storeu_ps(h, vh);
#endif
  for (; i + L <= n; i += L)
    for (unsigned k = 0; k < L; ++k) {
      l[k] = x[i + k] < l[k] ? x[i + k] : l[k];
      h[k] = x[i + k] > h[k] ? x[i + k] : h[k];
    }
  lo = INFINITY, hi = -INFINITY;
  for (unsigned k = 0; k < L; ++k) lo = std::min(lo, l[k]), hi = std::max(hi, h[k]);
  for (; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  if (lo == 0.0f || hi == 0.0f) {
    lo = INFINITY, hi = -INFINITY;
    for (i = 0; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  }
}

// The parts and attributes of a quant tensor of n values, and its error.
void finish_quant(Encoded& out, uint64_t n, QuantPayload p, const ErrorNorms& norms) {
  out.error_measured = true, out.err_sq = norms.err_sq, out.delta_sq = norms.delta_sq;
  out.attrs["quant.bits"] = p.w;
  out.attrs["quant.group"] = p.G;
  const uint64_t groups = p.mins.size();
  out.add({"quant.codes", PartKind::U8, {packed_bytes(n, p.w)}, std::move(p.codes), ""});
  out.add({"quant.mins", PartKind::F32, {groups}, bytes_of<float>(p.mins), ""});
  out.add({"quant.steps", PartKind::F32, {groups}, bytes_of<float>(p.steps), ""});
}

// Quantization a block of whole groups at a time, in one pass (Stage::block_encoder): each
// group's range, codes and — through the payload's own decode — the error, with the same lane
// order as over the whole stream. Groups must start on a byte of codes (G·bits a multiple of 8)
// and fit a block.
class QuantBlockEncoder final : public BlockEncoder {
 public:
  static constexpr uint64_t kBlock = 16384;
  static bool suits(const QuantParams& prm) { return prm.group <= kBlock && prm.group * prm.bits % 8 == 0; }

  QuantBlockEncoder(const QuantParams& prm, uint64_t n) : n_(n), groups_((n + prm.group - 1) / prm.group) {
    p_.w = prm.bits, p_.G = prm.group;
    p_.codes.assign(packed_bytes(n, prm.bits), 0);
    p_.mins.assign(groups_, 0.0f), p_.steps.assign(groups_, 0.0f);
    codes_.resize(std::min(kBlock / p_.G * p_.G, n)), recon_.resize(codes_.size());
    lanes_.keep_pieces();  // a split tensor's block joins its pieces to the others' (take_groups)
  }

  uint64_t block_end(uint64_t first) const override { return std::min(n_, first + kBlock / p_.G * p_.G); }

  void stats(uint64_t first, std::span<const float> block) override {
    const uint64_t m = block.size(), G = p_.G;
    const float qmax = static_cast<float>((1u << p_.w) - 1);
    std::fill(codes_.begin(), codes_.begin() + static_cast<std::ptrdiff_t>(m), 0);
    for (uint64_t b = 0; b < m; b += G) {
      const uint64_t e = std::min(m, b + G), g = (first + b) / G;
      float lo, hi;
      group_min_max(block.data() + b, e - b, lo, hi);
      const float step = (hi - lo) / qmax;
      p_.mins[g] = lo, p_.steps[g] = step;
      if (step == 0.0f) continue;
      for (uint64_t i = b; i < e; ++i) {
        const float q = std::nearbyint((block[i] - lo) / step);
        codes_[i] = static_cast<uint16_t>(std::clamp(q, 0.0f, qmax));
      }
    }
    pack_fields_into({codes_.data(), m}, p_.w, p_.codes.data() + first * p_.w / 8);
    p_.decode(first, m, recon_.data());  // what decoding will give
    lanes_.add_block(block.data(), first, first + m, recon_.data());
  }
  bool second_pass() const override { return false; }
  void encode(uint64_t, std::span<const float>) override {}

  void finish(Encoded& out) override { finish_quant(out, n_, std::move(p_), lanes_.sums()); }
  QuantGroups take_groups() {
    QuantGroups g{std::move(p_.codes), std::move(p_.mins), std::move(p_.steps), {}, {}};
    lanes_.take_pieces(g.piece_err_sq, g.piece_delta_sq);
    return g;
  }

 private:
  uint64_t n_, groups_;
  QuantPayload p_;
  std::vector<uint16_t> codes_;
  std::vector<float> recon_;
  ErrorLanes lanes_;
};
}  // namespace

std::unique_ptr<BlockEncoder> quant_block_encoder(const QuantParams& prm, uint64_t n) {
  if (!QuantBlockEncoder::suits(prm) || n == 0) return nullptr;
  return std::make_unique<QuantBlockEncoder>(prm, n);
}

QuantGroups take_quant_groups(BlockEncoder& enc) { return dynamic_cast<QuantBlockEncoder&>(enc).take_groups(); }

namespace {
// The block encoder's pass done by a device: what it found, stored here (finish() only).
class QuantGroupsEncoder final : public BlockEncoder {
 public:
  QuantGroupsEncoder(const QuantParams& prm, uint64_t n, QuantGroups g) : prm_(prm), n_(n), g_(std::move(g)) {}
  uint64_t block_end(uint64_t) const override { return n_; }
  void stats(uint64_t, std::span<const float>) override {}
  bool second_pass() const override { return false; }
  void encode(uint64_t, std::span<const float>) override {}
  void finish(Encoded& out) override {
    const uint64_t groups = (n_ + prm_.group - 1) / prm_.group;
    if (g_.codes.size() != packed_bytes(n_, prm_.bits) || g_.mins.size() != groups || g_.steps.size() != groups ||
        g_.piece_err_sq.size() != g_.piece_delta_sq.size())
      throw std::logic_error("quant_encoder_from_groups: parts of the wrong size");
    const ErrorNorms norms = ErrorLanes::from_pieces(g_.piece_err_sq, g_.piece_delta_sq);
    finish_quant(out, n_, {prm_.bits, prm_.group, std::move(g_.codes), std::move(g_.mins), std::move(g_.steps)}, norms);
  }

 private:
  QuantParams prm_;
  uint64_t n_;
  QuantGroups g_;
};
}  // namespace

std::unique_ptr<BlockEncoder> quant_encoder_from_groups(const QuantParams& prm, uint64_t n, QuantGroups groups) {
  return std::make_unique<QuantGroupsEncoder>(prm, n, std::move(groups));
}

std::optional<StoredQuant> stored_quant_alone(const AttrReader& a, const PartSource& src, uint64_t n) {
  if (!a.attrs.contains("codec") || a.attrs["codec"] != "quant") return std::nullopt;
  if (src.names().size() != 3 || !src.has("quant.codes") || !src.has("quant.mins") || !src.has("quant.steps"))
    return std::nullopt;
  QuantPayload p = load_quant(a, src, n);
  return StoredQuant{p.w, p.G, std::move(p.codes), std::move(p.mins), std::move(p.steps)};
}

void quant_encode(const QuantParams& prm, const ValueStream& s, Encoded& out) {
  const uint64_t n = s.values.size(), G = prm.group;
  if (s.skip.empty() && n > 0 && QuantBlockEncoder::suits(prm)) {  // the block form, one implementation
    QuantBlockEncoder enc(prm, n);
    encode_in_blocks(enc, s.values, out);
    return;
  }
  const uint64_t groups = (n + G - 1) / G;
  const float qmax = static_cast<float>((1u << prm.bits) - 1);
  std::vector<float> mins(groups), steps(groups);
  std::vector<uint16_t> codes(n, 0);
  for (uint64_t g = 0; g < groups; ++g) {
    const uint64_t b = g * G, e = std::min(n, b + G);
    float lo = INFINITY, hi = -INFINITY;
    for (uint64_t i = b; i < e; ++i)
      if (!s.skipped(i)) lo = std::min(lo, s.values[i]), hi = std::max(hi, s.values[i]);
    if (lo > hi) lo = hi = 0.0f;  // every entry skipped
    const float step = (hi - lo) / qmax;
    mins[g] = lo;
    steps[g] = step;
    if (step == 0.0f) continue;
    for (uint64_t i = b; i < e; ++i) {
      float q = std::nearbyint((s.values[i] - lo) / step);
      codes[i] = static_cast<uint16_t>(std::clamp(q, 0.0f, qmax));
    }
  }
  QuantPayload p{prm.bits, G, pack_fields(codes, prm.bits), std::move(mins), std::move(steps)};
  if (s.skip.empty()) {  // the error of what decoding gives, decoded a cache-sized block at a time
    ErrorLanes lanes;
    constexpr uint64_t kBlock = 4096;
    float recon[kBlock];
    for (uint64_t b = 0; b < n; b += kBlock) {
      const uint64_t m = std::min(kBlock, n - b);
      p.decode(b, m, recon);
      lanes.add(s.values, b, b + m, recon);
    }
    const ErrorNorms norms = lanes.sums();
    out.error_measured = true, out.err_sq = norms.err_sq, out.delta_sq = norms.delta_sq;
  }
  out.attrs["quant.bits"] = prm.bits;
  out.attrs["quant.group"] = G;
  out.add({"quant.codes", PartKind::U8, {packed_bytes(n, prm.bits)}, std::move(p.codes), ""});
  out.add({"quant.mins", PartKind::F32, {groups}, bytes_of<float>(p.mins), ""});
  out.add({"quant.steps", PartKind::F32, {groups}, bytes_of<float>(p.steps), ""});
}

namespace {
// Serving: the codes stay packed; a row is dequantised when it is multiplied (DeltaProduct's
// default multiply_add), one group's lo and step at a time.
class QuantProduct final : public DeltaProduct {
 public:
  QuantProduct(uint64_t rows, uint64_t cols, QuantPayload p) : DeltaProduct(rows, cols), p_(std::move(p)) {}
  void decode_row(uint64_t r, float* out) const override { p_.decode(r * cols_, cols_, out); }
  uint64_t bytes() const override { return p_.codes.size() + (p_.mins.size() + p_.steps.size()) * 4; }
  std::string form() const override { return "codes"; }

 private:
  QuantPayload p_;
};
}  // namespace

namespace {
// The stream a range at a time, from the packed codes.
class QuantRangeDecoder final : public RangeDecoder {
 public:
  explicit QuantRangeDecoder(QuantPayload p) : p_(std::move(p)) {}
  void decode(uint64_t first, uint64_t n, float* out) const override { p_.decode(first, n, out); }

 private:
  QuantPayload p_;
};
}  // namespace

std::unique_ptr<RangeDecoder> quant_decoder(const AttrReader& a, const PartSource& src, uint64_t n) {
  return std::make_unique<QuantRangeDecoder>(load_quant(a, src, n));
}

std::vector<float> quant_decode(const AttrReader& a, const PartSource& src, uint64_t n) {
  std::vector<float> out(n);
  quant_decoder(a, src, n)->decode(0, n, out.data());
  return out;
}

std::unique_ptr<DeltaProduct> quant_product(const AttrReader& a, const PartSource& src, uint64_t rows, uint64_t cols) {
  return std::make_unique<QuantProduct>(rows, cols, load_quant(a, src, rows * cols));
}

}  // namespace deltakit

// --- the stage ------------------------------------------------------------------------------
namespace deltakit {
namespace {

class QuantStage final : public Stage {
 public:
  explicit QuantStage(const QuantParams& p) : p_(p) {}
  const char* name() const override { return "quant"; }
  StageRole role() const override { return StageRole::ValueCoder; }
  std::string params() const override {
    return ":bits=" + std::to_string(p_.bits) + ",group=" + std::to_string(p_.group);
  }
  void encode_values(const ValueStream& s, Encoded& e) const override { quant_encode(p_, s, e); }
  std::unique_ptr<BlockEncoder> block_encoder(uint64_t rows, uint64_t cols) const override {
    return quant_block_encoder(p_, rows * cols);
  }
  const QuantParams& quant_params() const { return p_; }
  std::vector<float> decode_values(const AttrReader& a, const PartSource& src, uint64_t count,
                                   std::span<const uint64_t>) const override {
    return quant_decode(a, src, count);
  }
  std::unique_ptr<RangeDecoder> value_decoder(const AttrReader& a, const PartSource& src, uint64_t count,
                                              std::span<const uint64_t>) const override {
    return quant_decoder(a, src, count);
  }
  std::unique_ptr<DeltaProduct> value_product(const AttrReader& a, const PartSource& src, uint64_t rows,
                                              uint64_t cols) const override {
    return quant_product(a, src, rows, cols);
  }

 private:
  QuantParams p_;
};

}  // namespace

std::optional<QuantParams> quant_alone(const Recipe& r) {
  if (r.cherry || r.chain.size() != 1) return std::nullopt;
  const auto* q = dynamic_cast<const QuantStage*>(r.chain[0].get());
  if (!q || !QuantBlockEncoder::suits(q->quant_params())) return std::nullopt;
  return q->quant_params();
}

std::unique_ptr<Stage> make_quant_stage(StageArgs& a, uint64_t) {
  QuantParams p;
  p.bits = static_cast<unsigned>(a.integer("bits", 4, 2, 8));
  if (p.bits != 2 && p.bits != 3 && p.bits != 4 && p.bits != 8) a.fail("bits must be 2, 3, 4 or 8");
  p.group = a.integer("group", 128, 1, uint64_t{1} << 40);
  return std::make_unique<QuantStage>(p);
}

}  // namespace deltakit
