#include <algorithm>
#include <stdexcept>

#ifdef __AVX512F__
// GCC 12 warns inside its own AVX-512 headers (their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#endif

#include "src/codec/bits.h"
#include "src/codec/error_norms.h"
#include "src/codec/recipe.h"
#include "src/codec/sparse.h"
#include "src/codec/stage.h"
#include "src/codec/tensor_codec.h"
#include "src/core/parallel.h"
#include "src/core/philox.h"
#include "src/core/tensor_view.h"

namespace deltakit {

double DareParams::effective_rescale() const {
  if (!rescale_auto) return rescale;
  return p >= 1.0 ? 1.0 : 1.0 / (1.0 - p);
}

namespace {
// The entries [begin, begin + m) that DARE keeps (word ≥ threshold, not in `skip`), their
// positions and rescaled values into pos and val (branchless compaction: the mask is random);
// returns how many. `delta` points at entry begin.
uint64_t dare_keep(const uint32_t* words, uint64_t threshold, float scale, const float* delta,
                   std::span<const uint8_t> skip, uint64_t begin, uint64_t m, uint64_t* pos, float* val) {
  uint64_t k = 0, j = 0;
#ifdef __AVX512F__
  // 16 entries at a time: the kept ones' positions and values compressed in registers and stored
  // whole (k <= j, so a store of 16 from k stays inside the m entries; a compress straight to
  // memory is microcoded on Zen 4, 1.6x slower than the scalar loop). The scalar compaction was
  // two thirds of DARE's fused pass; the same entries in the same order.
  if (skip.empty() && threshold <= 0xFFFFFFFFu) {
    const __m512i thr = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(threshold)));
    const __m512 sc = _mm512_set1_ps(scale);
    const __m512i step = _mm512_set1_epi64(8);
    __m512i at =
        _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(begin)), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
    for (; j + 16 <= m; j += 16) {
      const __mmask16 keep = _mm512_cmpge_epu32_mask(_mm512_loadu_si512(words + j), thr);
      _mm512_storeu_ps(val + k, _mm512_maskz_compress_ps(keep, _mm512_mul_ps(_mm512_loadu_ps(delta + j), sc)));
      const __mmask8 lo = static_cast<__mmask8>(keep), hi = static_cast<__mmask8>(keep >> 8);
      _mm512_storeu_si512(pos + k, _mm512_maskz_compress_epi64(lo, at));
      at = _mm512_add_epi64(at, step);
      const unsigned n_lo = static_cast<unsigned>(__builtin_popcount(lo));
      _mm512_storeu_si512(pos + k + n_lo, _mm512_maskz_compress_epi64(hi, at));
      at = _mm512_add_epi64(at, step);
      k += n_lo + static_cast<unsigned>(__builtin_popcount(hi));
    }
  }
#endif
  for (; j < m; ++j) {
    const uint64_t i = begin + j;
    pos[k] = i;
    val[k] = delta[j] * scale;
    k += words[j] >= threshold && (skip.empty() || !skip[i]);
  }
  return k;
}
}  // namespace

SparseSelection dare_select(const DareParams& prm, std::string_view tensor_name, std::span<const float> delta,
                            std::span<const uint8_t> skip, unsigned threads, uint64_t block) {
  const uint64_t n = delta.size();
  const TensorRng rng(prm.seed, tensor_name);
  const uint64_t threshold = TensorRng::drop_threshold(prm.p);
  const float scale = static_cast<float>(prm.effective_rescale());
  block = std::max<uint64_t>(block, 4);
  const uint64_t blocks = (n + block - 1) / block;
  std::vector<SparseSelection> parts(blocks);
  parallel_blocks(n, block, threads, [&](uint64_t b, uint64_t begin, uint64_t end) {
    SparseSelection& s = parts[b];
    const uint64_t m = end - begin;
    std::vector<uint32_t> words(m);
    rng.words(begin, m, words.data());
    s.positions.resize(m);
    s.values.resize(m);
    const uint64_t k = dare_keep(words.data(), threshold, scale, delta.data() + begin, skip, begin, m,
                                 s.positions.data(), s.values.data());
    s.positions.resize(k);
    s.values.resize(k);
  });
  SparseSelection out;
  uint64_t total = 0;
  for (const auto& s : parts) total += s.positions.size();
  out.positions.reserve(total);
  out.values.reserve(total);
  for (const auto& s : parts) {
    out.positions.insert(out.positions.end(), s.positions.begin(), s.positions.end());
    out.values.insert(out.values.end(), s.values.begin(), s.values.end());
  }
  return out;
}

std::vector<uint64_t> sparse_row_offsets(std::span<const uint64_t> positions, uint64_t rows, uint64_t cols) {
  std::vector<uint64_t> off(rows + 1, 0);
  uint64_t j = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    off[r] = j;
    const uint64_t row_end = (r + 1) * cols;
    while (j < positions.size() && positions[j] < row_end) ++j;
  }
  off[rows] = j;
  return off;
}

}  // namespace deltakit

// --- the fused pass ---------------------------------------------------------------------------
namespace deltakit {
namespace {

// DARE alone's parts and attributes from its kept entries and the error's sums.
void finish_dare(Encoded& e, const DareParams& prm, const ValueType& vt, CodedPositions positions, uint64_t count,
                 std::vector<uint8_t> values, const ErrorNorms& norms) {
  store_positions(e, "dare", std::move(positions), count);
  e.attrs["dare.rescale"] = prm.effective_rescale();
  e.add({"dare.values", vt.kind, {count}, std::move(values), vt.encoding});
  e.error_measured = true, e.err_sq = norms.err_sq, e.delta_sq = norms.delta_sq;
}

// DARE alone a block at a time, in one pass: the kept entries' stored values, their positions
// (PositionsCoder: both codings until the end shows the smaller), and the error against the
// stored values (δ̂ is zero where dropped). The same parts, attributes and
// error sums as dare_select + encode_chain + measure_sparse_error over the whole δ, without it.
class DareBlockEncoder final : public BlockEncoder {
 public:
  DareBlockEncoder(const DareParams& prm, std::string_view name, DType dtype, uint64_t n)
      : prm_(prm),
        rng_(prm.seed, name),
        threshold_(TensorRng::drop_threshold(prm.p)),
        scale_(static_cast<float>(prm.effective_rescale())),
        vt_(value_type_for(dtype)),
        n_(n),
        positions_(n),
        words_(kBlock),
        pos_(kBlock),
        kept_(kBlock),
        recon_(kBlock) {}

  uint64_t block_end(uint64_t first) const override { return std::min(first + kBlock, n_); }

  void stats(uint64_t first, std::span<const float> block) override {
    const uint64_t m = block.size();
    rng_.words(first, m, words_.data());
    const uint64_t k =
        dare_keep(words_.data(), threshold_, scale_, block.data(), {}, first, m, pos_.data(), kept_.data());
    const size_t es = dtype_size(vt_.dtype);
    const size_t old = values_.size();
    values_.resize(old + k * es);
    encode_from_f32(vt_.dtype, {kept_.data(), k}, {values_.data() + old, k * es});
    decode_to_f32(vt_.dtype, {values_.data() + old, k * es}, 0, {kept_.data(), k});  // δ̂ as decoding reads it
    std::fill(recon_.begin(), recon_.begin() + static_cast<std::ptrdiff_t>(m), 0.0f);
    for (uint64_t q = 0; q < k; ++q) recon_[pos_[q] - first] = kept_[q];
    positions_.add({pos_.data(), k});
    lanes_.add_block(block.data(), first, first + m, recon_.data());
  }
  bool second_pass() const override { return false; }
  void encode(uint64_t, std::span<const float>) override {}

  void finish(Encoded& e) override {
    const uint64_t count = positions_.count();
    finish_dare(e, prm_, vt_, positions_.take(), count, std::move(values_), lanes_.sums());
  }

 private:
  static constexpr uint64_t kBlock = 16384;
  DareParams prm_;
  TensorRng rng_;
  uint64_t threshold_;
  float scale_;
  ValueType vt_;
  uint64_t n_;
  PositionsCoder positions_;
  std::vector<uint8_t> values_;  // the kept values as stored
  std::vector<uint32_t> words_;  // per block: the Philox words, the kept entries and their values
  std::vector<uint64_t> pos_;
  std::vector<float> kept_, recon_;
  ErrorLanes lanes_;
};

// The same pass done by a device: what it kept, coded and stored here (finish() only).
class DareKeptEncoder final : public BlockEncoder {
 public:
  DareKeptEncoder(const DareParams& prm, DType dtype, uint64_t n, DareKept kept)
      : prm_(prm), vt_(value_type_for(dtype)), n_(n), kept_(std::move(kept)) {}
  uint64_t block_end(uint64_t) const override { return n_; }
  void stats(uint64_t, std::span<const float>) override {}
  bool second_pass() const override { return false; }
  void encode(uint64_t, std::span<const float>) override {}
  void finish(Encoded& e) override {
    if (kept_.values.size() != kept_.positions.size() * dtype_size(vt_.dtype) ||
        kept_.piece_err_sq.size() != kept_.piece_delta_sq.size())
      throw std::logic_error("dare_encoder_from_kept: values or piece sums do not match the positions");
    PositionsCoder coder(n_);
    coder.add(kept_.positions);
    const uint64_t count = coder.count();
    finish_dare(e, prm_, vt_, coder.take(), count, std::move(kept_.values),
                ErrorLanes::from_pieces(kept_.piece_err_sq, kept_.piece_delta_sq));
  }

 private:
  DareParams prm_;
  ValueType vt_;
  uint64_t n_;
  DareKept kept_;
};

}  // namespace

std::unique_ptr<BlockEncoder> dare_encoder_from_kept(const DareParams& prm, DType dtype, uint64_t n, DareKept kept) {
  return std::make_unique<DareKeptEncoder>(prm, dtype, n, std::move(kept));
}

}  // namespace deltakit

// --- the stage ------------------------------------------------------------------------------
namespace deltakit {
namespace {

class DareStage final : public Stage {
 public:
  explicit DareStage(const DareParams& p) : p_(p) {}
  const char* name() const override { return "dare"; }
  StageRole role() const override { return StageRole::Sparsifier; }
  std::string params() const override {
    return ":p=" + recipe_number(p_.p) +
           ",rescale=" + (p_.rescale_auto ? std::string("auto") : recipe_number(p_.rescale)) +
           ",seed=" + std::to_string(p_.seed);
  }
  SparseSelection select(const TensorDelta& t, std::span<const float> delta,
                         std::span<const uint8_t> skip) const override {
    return dare_select(p_, t.name, delta, skip, t.threads);
  }
  void add_attrs(Encoded& e) const override { e.attrs["dare.rescale"] = p_.effective_rescale(); }
  const DareParams& dare_params() const { return p_; }
  std::unique_ptr<BlockEncoder> sparse_block_encoder(std::string_view name, DType dtype, uint64_t n) const override {
    return std::make_unique<DareBlockEncoder>(p_, name, dtype, n);
  }

 private:
  DareParams p_;
};

}  // namespace

std::optional<DareParams> dare_alone(const Recipe& r) {
  if (r.cherry || r.chain.size() != 1) return std::nullopt;
  const auto* d = dynamic_cast<const DareStage*>(r.chain[0].get());
  if (!d) return std::nullopt;
  return d->dare_params();
}

std::unique_ptr<Stage> make_dare_stage(StageArgs& a, uint64_t seed) {
  DareParams p;
  p.p = a.real("p", 0.9, 0.0, 1.0);
  std::string r = a.take("rescale", "auto");
  if (r == "auto") {
    p.rescale_auto = true;
  } else if (r == "none") {
    p.rescale_auto = false, p.rescale = 1.0;
  } else {
    p.rescale_auto = false;
    p.rescale = a.parse_real("rescale", r, 0.0, 1e6, true);
  }
  p.seed = a.integer("seed", seed, 0, UINT64_MAX);
  return std::make_unique<DareStage>(p);
}

}  // namespace deltakit
