#include "src/codec/split_pass.h"

#include <cstring>
#include <numeric>
#include <stdexcept>

#include "src/codec/bitdelta.h"
#include "src/codec/bits.h"
#include "src/codec/error_norms.h"
#include "src/codec/quant.h"
#include "src/codec/stage.h"
#include "src/core/error.h"

namespace deltakit {

uint64_t split_rows(const Recipe& r, uint64_t cols) {
  if (cols == 0) return 0;
  uint64_t entries = 0;  // the granularity in entries
  if (const std::optional<BitDeltaParams> b = one_level_bitdelta(r)) {
    // a row or group unit's sums restart at the unit, a matrix unit's runs and pieces do not
    if (b->scale == ScaleUnit::Matrix) entries = BitDeltaLayout::kSqPiece;
    if (b->scale == ScaleUnit::Row) entries = 8;
    if (b->scale == ScaleUnit::Group) entries = std::lcm<uint64_t>(b->group, 8);
  } else if (const std::optional<QuantParams> q = quant_alone(r)) {
    entries = std::lcm<uint64_t>(q->group, ErrorLanes::kPiece);  // a group's codes start on a byte
  } else {
    return 0;
  }
  return entries / std::gcd(entries, cols);
}

std::vector<uint64_t> split_blocks(const Recipe& r, uint64_t rows, uint64_t cols, uint64_t block_rows) {
  const uint64_t g = split_rows(r, cols);
  if (g == 0 || block_rows == 0 || rows == 0) return {0, rows};
  const uint64_t b = std::max(g, block_rows / g * g);
  std::vector<uint64_t> starts;
  for (uint64_t r0 = 0; r0 < rows; r0 += b) starts.push_back(r0);
  starts.push_back(rows);
  return starts;
}

namespace {
TensorView rows_of(const TensorView& t, uint64_t r0, uint64_t r1) {
  const uint64_t cols = t.cols(), es = dtype_size(t.dtype);
  TensorView v;
  v.name = t.name;
  v.dtype = t.dtype;
  v.shape = {r1 - r0, cols};
  v.bytes = t.bytes.subspan(r0 * cols * es, (r1 - r0) * cols * es);
  v.file = t.file;
  v.file_offset = t.file_offset + r0 * cols * es;
  return v;
}

// A block's expected counts: BitDelta's from its own layout (its rows alone are a tensor whose
// units are the whole tensor's there), quant's from its groups and error pieces.
struct Expected {
  uint64_t runs = 0, pieces = 0, signs = 0;        // BitDelta
  uint64_t codes = 0, groups = 0, err_pieces = 0;  // quant
};
Expected expected(const Recipe& r, uint64_t rows, uint64_t cols) {
  Expected e;
  const uint64_t n = rows * cols;
  if (const std::optional<BitDeltaParams> b = one_level_bitdelta(r)) {
    const BitDeltaLayout l = bitdelta_layout(*b, rows, cols);
    e.runs = l.runs.size() - 1, e.pieces = l.pieces.size() - 1, e.signs = packed_bytes(n, 1);
  } else if (const std::optional<QuantParams> q = quant_alone(r)) {
    e.codes = packed_bytes(n, q->bits), e.groups = (n + q->group - 1) / q->group;
    e.err_pieces = n / ErrorLanes::kPiece + 1;  // the whole pieces, then the last (maybe empty)
  }
  return e;
}

constexpr char kMagic[8] = {'D', 'K', 'S', 'P', 'L', 'I', 'T', '1'};

template <class T>
void put(std::vector<uint8_t>& out, const std::vector<T>& v) {
  const uint64_t n = v.size();
  const auto* p = reinterpret_cast<const uint8_t*>(&n);
  out.insert(out.end(), p, p + 8);
  const auto* d = reinterpret_cast<const uint8_t*>(v.data());
  out.insert(out.end(), d, d + n * sizeof(T));
}

class Reader {
 public:
  Reader(std::span<const uint8_t> b, const std::string& where) : b_(b), where_(where) {}
  template <class T>
  std::vector<T> take(uint64_t want, const char* what) {
    uint64_t n = 0;
    need(8, what);
    std::memcpy(&n, b_.data() + at_, 8);
    at_ += 8;
    if (n != want)
      fail(std::string(what) + " holds " + std::to_string(n) + " values, expected " + std::to_string(want));
    need(n * sizeof(T), what);
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), b_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
    return v;
  }
  uint8_t byte(const char* what) {
    need(1, what);
    return b_[at_++];
  }
  void skip(uint64_t n, const char* what) { need(n, what), at_ += n; }
  void end() const {
    if (at_ != b_.size()) fail(std::to_string(b_.size() - at_) + " bytes after the block's last array");
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::AdapterInvalid, where_, "split block: " + what);
  }

 private:
  void need(uint64_t n, const char* what) const {
    if (n > b_.size() - at_) fail(std::string("truncated in ") + what);
  }
  std::span<const uint8_t> b_;
  const std::string& where_;
  uint64_t at_ = 0;
};

template <class T>
void append(std::vector<T>& to, std::vector<T>& from) {
  to.insert(to.end(), from.begin(), from.end());
  std::vector<T>().swap(from);
}
}  // namespace

BlockPass block_pass(const Recipe& r, const TensorView& base, const TensorView& ft, uint64_t r0, uint64_t r1) {
  // a block's fingerprint would be no use: the adapter records the whole tensor's
  StatsPass s = stats_pass(r, rows_of(base, r0, r1), rows_of(ft, r0, r1), /*fingerprint=*/false);
  if (!s.enc) throw std::logic_error("block_pass: the recipe has no split form (split_rows is 0)");
  BlockPass b;
  b.changed = s.changed, b.nonfinite = s.nonfinite;
  if (one_level_bitdelta(r))
    b.bitdelta = take_bitdelta_sums(*s.enc);
  else
    b.quant = take_quant_groups(*s.enc);
  return b;
}

std::vector<uint8_t> block_pass_bytes(const BlockPass& b) {
  std::vector<uint8_t> out(kMagic, kMagic + 8);
  out.push_back(b.changed), out.push_back(b.nonfinite);
  out.resize(16, 0);
  put(out, b.bitdelta.run_abs), put(out, b.bitdelta.piece_sq), put(out, b.bitdelta.signs);
  put(out, b.quant.codes), put(out, b.quant.mins), put(out, b.quant.steps);
  put(out, b.quant.piece_err_sq), put(out, b.quant.piece_delta_sq);
  return out;
}

BlockPass block_pass_from_bytes(std::span<const uint8_t> bytes, const Recipe& r, uint64_t rows, uint64_t cols,
                                const std::string& where) {
  Reader in(bytes, where);
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 8) != 0) in.fail("not a deltakit split block");
  in.skip(8, "the magic");
  BlockPass b;
  const uint8_t changed = in.byte("the flags"), nonfinite = in.byte("the flags");
  if (changed > 1 || nonfinite > 1) in.fail("flags are not 0 or 1");
  b.changed = changed, b.nonfinite = nonfinite;
  in.skip(6, "the header");
  const Expected e = expected(r, rows, cols);
  b.bitdelta.run_abs = in.take<float>(e.runs, "BitDelta's run sums");
  b.bitdelta.piece_sq = in.take<double>(e.pieces, "BitDelta's piece sums");
  b.bitdelta.signs = in.take<uint8_t>(e.signs, "BitDelta's sign bits");
  b.quant.codes = in.take<uint8_t>(e.codes, "quant's codes");
  b.quant.mins = in.take<float>(e.groups, "quant's minima");
  b.quant.steps = in.take<float>(e.groups, "quant's steps");
  b.quant.piece_err_sq = in.take<double>(e.err_pieces, "quant's error pieces");
  b.quant.piece_delta_sq = in.take<double>(e.err_pieces, "quant's delta pieces");
  in.end();
  return b;
}

BlockJoiner::BlockJoiner(const Recipe& r, const TensorView& ft) : r_(r), n_(ft.numel()), cols_(ft.cols()) {
  const Expected e = expected(r, cols_ ? n_ / cols_ : 0, cols_);
  all_.bitdelta.run_abs.reserve(e.runs), all_.bitdelta.piece_sq.reserve(e.pieces);
  all_.bitdelta.signs.reserve(e.signs);
  all_.quant.codes.reserve(e.codes), all_.quant.mins.reserve(e.groups), all_.quant.steps.reserve(e.groups);
  // each block's error pieces end with one that may be empty: up to a piece more per block
  all_.quant.piece_err_sq.reserve(e.err_pieces), all_.quant.piece_delta_sq.reserve(e.err_pieces);
}

void BlockJoiner::add(BlockPass b) {
  changed_ |= b.changed, nonfinite_ |= b.nonfinite;
  append(all_.bitdelta.run_abs, b.bitdelta.run_abs), append(all_.bitdelta.piece_sq, b.bitdelta.piece_sq);
  append(all_.bitdelta.signs, b.bitdelta.signs);
  append(all_.quant.codes, b.quant.codes), append(all_.quant.mins, b.quant.mins);
  append(all_.quant.steps, b.quant.steps), append(all_.quant.piece_err_sq, b.quant.piece_err_sq);
  append(all_.quant.piece_delta_sq, b.quant.piece_delta_sq);
}

PreparedDelta BlockJoiner::finish() {
  PreparedDelta p;
  p.changed = changed_;
  if (!p.changed) return p;  // all δ zero: stored as unchanged
  if (nonfinite_) {
    p.fallback = kNonFiniteDelta;
    return p;
  }
  if (const std::optional<BitDeltaParams> prm = one_level_bitdelta(r_))
    p.stream = bitdelta_encoder_from_sums(*prm, bitdelta_layout(*prm, n_ / cols_, cols_), std::move(all_.bitdelta));
  else if (const std::optional<QuantParams> q = quant_alone(r_))
    p.stream = quant_encoder_from_groups(*q, n_, std::move(all_.quant));
  else
    throw std::logic_error("BlockJoiner: the recipe has no split form");
  return p;
}

}  // namespace deltakit
