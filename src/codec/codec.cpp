#include "src/codec/codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <type_traits>

#include "src/codec/cherry_stream.h"
#include "src/codec/stage.h"
#include "src/codec/tensor_codec.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/core/half.h"
#include "src/core/thread_spare.h"

namespace deltakit {

namespace {
// The coder of a recipe that can take this tensor's δ a block at a time: one value coder over the
// dense tensor or one sparsifier with a block form, or a value coder with a cherry whose
// selection can stream (src/codec/cherry_stream.h).
std::unique_ptr<BlockEncoder> block_encoder_for(const Recipe& r, const TensorView& ft) {
  const uint64_t n = ft.numel(), cols = ft.shape.empty() ? 1 : ft.shape.back();
  if (n == 0 || cols == 0) return nullptr;
  if (r.cherry) return cherry_block_encoder(r, ft.dtype, n / cols, cols);
  if (r.chain.size() != 1) return nullptr;
  const Stage& s = *r.chain[0];
  if (s.role() == StageRole::ValueCoder) return s.block_encoder(n / cols, cols);
  if (s.role() == StageRole::Sparsifier) return s.sparse_block_encoder(ft.name, ft.dtype, n);
  return nullptr;
}

// d = ft − base in fp32 for entries [first, first + d.size()), base decoded into `scratch`;
// returns non-zero if an entry is not finite (both paths below compute δ by this one loop).
// The raw bytes are those of the tensors' entries from `offset` on (the whole tensor, or a window).
uint32_t delta_block(DType dtype, std::span<const uint8_t> base, std::span<const uint8_t> ft, uint64_t offset,
                     std::span<float> d, float* scratch) {
  const uint64_t m = d.size();
  decode_to_f32(dtype, ft, offset, d);
  decode_to_f32(dtype, base, offset, {scratch, m});
  uint32_t nonfinite = 0;
  for (uint64_t k = 0; k < m; ++k) {
    d[k] -= scratch[k];
    nonfinite |= (f32_bits(d[k]) & 0x7f800000u) == 0x7f800000u;  // branch-free: vectorizes
  }
  return nonfinite;
}

// A tensor pair's raw bytes a window at a time, read by read_elements (pread from the files: no
// page of their mappings touched), with what the fused pass learns on the way when asked:
// whether the pair differs, and the base's fingerprint. Blocks come in order; a block that runs
// past the window keeps its start (moved to the front) and the rest is read after it, so every
// byte is read, compared and fingerprinted once.
class PairWindow {
 public:
  PairWindow(const TensorView& base, const TensorView& ft, bool track, bool fingerprint = true)
      : base_(base),
        ft_(ft),
        es_(dtype_size(ft.dtype)),
        n_(ft.numel()),
        track_(track),
        fingerprint_on_(fingerprint),
        b_(ThreadSpare<uint8_t, 0>::take()),
        f_(ThreadSpare<uint8_t, 1>::take()) {}
  ~PairWindow() { ThreadSpare<uint8_t, 0>::give(std::move(b_)), ThreadSpare<uint8_t, 1>::give(std::move(f_)); }
  PairWindow(const PairWindow&) = delete;
  PairWindow& operator=(const PairWindow&) = delete;

  // Entries [first, end) are in the window from here on; first must not go back.
  void need(uint64_t first, uint64_t end) {
    if (first >= lo_ && end <= hi_) return;
    if (first < lo_ || first > hi_) throw std::logic_error("PairWindow: blocks must come in order, without gaps");
    const uint64_t keep = first < hi_ ? hi_ - first : 0, from = std::max(first, hi_);
    const uint64_t to = std::min(n_, std::max(end, first + kWindow));
    if (b_.size() < (to - first) * es_) b_.resize((to - first) * es_), f_.resize((to - first) * es_);
    if (keep) {
      std::memmove(b_.data(), b_.data() + (first - lo_) * es_, keep * es_);
      std::memmove(f_.data(), f_.data() + (first - lo_) * es_, keep * es_);
    }
    uint8_t *nb = b_.data() + keep * es_, *nf = f_.data() + keep * es_;
    read_elements(base_, from, to - from, nb);
    read_elements(ft_, from, to - from, nf);
    if (track_) {
      const uint64_t bytes = (to - from) * es_;
      differs_ = differs_ || std::memcmp(nb, nf, bytes) != 0;
      if (fingerprint_on_) fingerprint_.add({nb, bytes});
    }
    lo_ = first, hi_ = to;
  }
  std::span<const uint8_t> base() const { return {b_.data(), (hi_ - lo_) * es_}; }
  std::span<const uint8_t> ft() const { return {f_.data(), (hi_ - lo_) * es_}; }
  uint64_t lo() const { return lo_; }
  bool differs() const { return differs_; }
  uint64_t fingerprint() const { return fingerprint_.value(); }

 private:
  static constexpr uint64_t kWindow = 1 << 17;  // entries: 256 KB of bf16 per input, in L2
  const TensorView &base_, &ft_;
  size_t es_;
  uint64_t n_, lo_ = 0, hi_ = 0;
  bool track_, fingerprint_on_, differs_ = false;
  SpareVector<uint8_t> b_, f_;  // the thread's spares while this window lives
  Fingerprinter fingerprint_;
};

// fn(first, δ[first, end)) for the blocks `enc` draws; returns whether any entry was not finite.
template <class Fn>
bool for_each_delta_block(PairWindow& win, uint64_t n, DType dtype, const BlockEncoder& enc, Fn fn) {
  std::vector<float> d, b;
  uint32_t nonfinite = 0;
  for (uint64_t first = 0, end; first < n; first = end) {
    end = enc.block_end(first);
    const uint64_t m = end - first;
    if (d.size() < m) d.resize(m), b.resize(m);
    win.need(first, end);
    nonfinite |= delta_block(dtype, win.base(), win.ft(), first - win.lo(), {d.data(), m}, b.data());
    fn(first, std::span<const float>(d.data(), m));
  }
  return nonfinite != 0;
}
}  // namespace

Encoded encode_streamed(const Recipe& r, const TensorView& base, const TensorView& ft, BlockEncoder& enc,
                        const Importance& importance, const ScoreCut* cut, const CutSelection* selection) {
  if (auto* cherry = dynamic_cast<CherryBlockEncoder*>(&enc)) cherry->select_with(importance, cut, selection);
  if (enc.second_pass()) {
    PairWindow win(base, ft, /*track=*/false);
    for_each_delta_block(win, ft.numel(), ft.dtype, enc,
                         [&](uint64_t first, std::span<const float> d) { enc.encode(first, d); });
  }
  Encoded e;
  enc.finish(e);
  e.attrs["recipe"] = r.canonical();  // after the coder's own, as encode_chain stores them
  e.attrs["codec"] = r.codec_names();
  return e;
}

void streamed_cherry_scores(
    const TensorView& base, const TensorView& ft, BlockEncoder& enc, const Importance& importance,
    const std::function<void(std::span<const float> scores, std::span<const float> delta)>& visit) {
  auto& cherry = dynamic_cast<CherryBlockEncoder&>(enc);
  std::vector<float> scores;
  PairWindow win(base, ft, /*track=*/false);
  for_each_delta_block(win, ft.numel(), ft.dtype, enc, [&](uint64_t first, std::span<const float> d) {
    scores.resize(d.size());
    cherry.scores(first, d, importance, scores.data());
    visit(scores, d);
  });
}

PreparedDelta compare_pair(const Recipe& r, const TensorView& base, const TensorView& ft) {
  PreparedDelta p;
  p.changed =
      base.bytes.size() != ft.bytes.size() || std::memcmp(base.bytes.data(), ft.bytes.data(), base.bytes.size()) != 0;
  p.fallback = p.changed ? recipe_unsuitable(r, ft.dtype, ft.shape) : "";
  return p;
}

StatsPass stats_pass(const Recipe& r, const TensorView& base, const TensorView& ft, bool fingerprint) {
  StatsPass s;
  if (!r.is_raw() && base.bytes.size() == ft.bytes.size() && recipe_unsuitable(r, ft.dtype, ft.shape).empty())
    s.enc = block_encoder_for(r, ft);
  if (!s.enc) return s;
  // one read of both inputs: the comparison, the base's fingerprint, the finite check and the
  // coder's statistics, block by block
  PairWindow win(base, ft, /*track=*/true, fingerprint);
  s.nonfinite = for_each_delta_block(win, ft.numel(), ft.dtype, *s.enc,
                                     [&](uint64_t first, std::span<const float> d) { s.enc->stats(first, d); });
  s.changed = win.differs();
  s.base_fingerprint = win.fingerprint();
  return s;
}

PreparedDelta prepare_delta(const Recipe& r, const TensorView& base, const TensorView& ft) {
  if (StatsPass s = stats_pass(r, base, ft); s.enc) {  // the fused pass's first half
    PreparedDelta p;
    p.changed = s.changed;
    p.base_fingerprint = s.base_fingerprint;
    if (!p.changed) return p;  // all δ zero: stored as unchanged, the statistics unused
    if (s.nonfinite)
      p.fallback = kNonFiniteDelta;
    else
      p.stream = std::move(s.enc);
    return p;
  }
  PreparedDelta p = compare_pair(r, base, ft);
  if (!p.lossy(r)) return p;
  // fine-tune minus base, block by block: one tensor-sized buffer, not two
  const uint64_t n = ft.numel(), block = 1 << 14;
  p.delta.resize(n);
  float b[block];
  uint32_t nonfinite = 0;
  for (uint64_t first = 0; first < n; first += block) {
    const uint64_t m = std::min(block, n - first);
    nonfinite |= delta_block(ft.dtype, base.bytes, ft.bytes, first, {p.delta.data() + first, m}, b);
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
    if constexpr (std::is_same_v<decltype(result), std::unique_ptr<BlockApplier>>)
      if (!result) return result;  // no block path: nothing was read (decode_add will check)
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

std::unique_ptr<BlockApplier> block_applier_of_stored(const StoredTensor& st, const TensorView& base) {
  return with_stored_codec(st, [&](const TensorCodec& c, const StoredTensor& s) { return c.block_applier(s, base); });
}

std::unique_ptr<DeltaProduct> product_of_stored(const StoredTensor& st, const TensorView& base) {
  return with_stored_codec(st, [&](const TensorCodec& c, const StoredTensor& s) { return c.product(s, base); });
}

}  // namespace deltakit
