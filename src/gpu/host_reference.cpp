#include "src/gpu/host_reference.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "src/codec/bits.h"
#include "src/codec/error_norms.h"
#include "src/core/philox.h"

namespace deltakit::gpu {

ElemType elem_type(DType t) {
  switch (t) {
    case DType::F32: return ElemType::F32;
    case DType::BF16: return ElemType::BF16;
    case DType::F16: return ElemType::F16;
    default: throw std::logic_error("gpu::elem_type: the GPU codecs take F32, BF16 and F16 tensors");
  }
}

PairView pair_view(const TensorView& base, const TensorView& ft) {
  return {base.bytes.data(), ft.bytes.data(), elem_type(ft.dtype)};
}

UnitMap unit_map_of(const OneLevelBitDelta& b, uint64_t cols) {
  switch (b.unit) {
    case ScaleUnit::Matrix: return {};
    case ScaleUnit::Row: return {cols};
    case ScaleUnit::Group: return {b.group};
  }
  throw std::logic_error("gpu::unit_map_of: unknown scale unit");
}

BitDeltaSums bitdelta_sums_reference(const PairView& p, const BitDeltaLayout& l, bool& nonfinite) {
  constexpr unsigned A = BitDeltaLayout::kAbsLanes, Q = BitDeltaLayout::kSqLanes;
  BitDeltaSums s;
  s.run_abs.resize(l.runs.size() - 1);
  for (uint64_t r = 0; r + 1 < l.runs.size(); ++r) {  // a kernel thread per (run, lane)
    float lane[A];
    for (unsigned k = 0; k < A; ++k) lane[k] = abs_lane(p, l.runs[r], l.runs[r + 1] - l.runs[r], k, A);
    s.run_abs[r] = add_lanes(lane, A);
  }
  s.piece_sq.resize(l.pieces.size() - 1);
  for (uint64_t q = 0; q + 1 < l.pieces.size(); ++q) {  // a kernel thread per (piece, lane)
    double lane[Q];
    for (unsigned k = 0; k < Q; ++k) lane[k] = sq_lane(p, l.pieces[q], l.pieces[q + 1] - l.pieces[q], k, Q);
    s.piece_sq[q] = add_lanes(lane, Q);
  }
  const uint64_t words = (l.n + 31) / 32;
  std::vector<uint8_t> packed(4 * words);
  bool bad = false;
  for (uint64_t w = 0; w < words; ++w) {  // a kernel thread per 32-entry word
    const uint32_t bits = sign_word(p, w, l.n, bad);
    for (int k = 0; k < 4; ++k) packed[4 * w + k] = static_cast<uint8_t>(bits >> (8 * k));
  }
  packed.resize(packed_bytes(l.n, 1));
  s.signs = std::move(packed);
  nonfinite = bad;
  return s;
}

void bitdelta_apply_reference(ElemType t, std::span<const uint8_t> base, std::span<const uint8_t> signs,
                              std::span<const float> scales, const UnitMap& units, float alpha,
                              std::span<uint8_t> out) {
  const uint64_t n = out.size() / elem_bytes(t);
  for (uint64_t i = 0; i < n; ++i)  // a kernel thread per entry
    store_elem(t, out.data(), i, bitdelta_applied(t, base.data(), signs.data(), scales[unit_of(units, i)], alpha, i));
}

static_assert(kErrPiece == ErrorLanes::kPiece && kErrLanes == ErrorLanes::kLanes);

DareDraw dare_draw(const DareParams& prm, std::string_view tensor_name) {
  return {TensorRng(prm.seed, tensor_name).stream(), TensorRng::drop_threshold(prm.p),
          static_cast<float>(prm.effective_rescale())};
}

DareKept dare_kept_reference(const PairView& p, const DareDraw& d, uint64_t n, bool& nonfinite) {
  const uint64_t words = (n + 31) / 32;
  std::vector<uint32_t> bits(words);
  std::vector<uint64_t> slot(words + 1, 0);
  bool bad = false;
  for (uint64_t w = 0; w < words; ++w) {  // a kernel thread per word
    bits[w] = dare_keep_word(p, d, w, n, bad);
    slot[w + 1] = slot[w] + static_cast<uint64_t>(__builtin_popcount(bits[w]));  // the scan
  }
  DareKept k;
  k.positions.resize(slot[words]);
  k.values.resize(slot[words] * elem_bytes(p.type));
  for (uint64_t w = 0; w < words; ++w)  // a kernel thread per word
    dare_compact_word(p, d, w, bits[w], slot[w], k.positions.data(), k.values.data());
  const uint64_t pieces = (n + kErrPiece - 1) / kErrPiece;
  k.piece_err_sq.resize(pieces);
  k.piece_delta_sq.resize(pieces);
  for (uint64_t q = 0; q < pieces; ++q) {  // a kernel thread per (piece, lane)
    const uint64_t first = q * kErrPiece, len = std::min(kErrPiece, n - first);
    double err[kErrLanes], sq[kErrLanes];
    for (unsigned l = 0; l < kErrLanes; ++l) dare_error_lane(p, d, first, len, l, err[l], sq[l]);
    k.piece_err_sq[q] = add_lanes(err, kErrLanes);
    k.piece_delta_sq[q] = add_lanes(sq, kErrLanes);
  }
  nonfinite = bad;
  return k;
}

QuantGroups quant_groups_reference(const PairView& p, unsigned bits, uint64_t group, uint64_t n, bool& nonfinite) {
  const uint64_t groups = (n + group - 1) / group, pieces = (n + kErrPiece - 1) / kErrPiece;
  QuantGroups q;
  q.codes.assign(packed_bytes(n, bits), 0);
  q.mins.resize(groups), q.steps.resize(groups);
  bool bad = false;
  for (uint64_t g = 0; g < groups; ++g) {  // a kernel thread per group
    const uint64_t first = g * group;
    quant_group(p, first, std::min(group, n - first), bits, q.mins[g], q.steps[g], q.codes.data() + first * bits / 8,
                bad);
  }
  q.piece_err_sq.resize(pieces), q.piece_delta_sq.resize(pieces);
  for (uint64_t k = 0; k < pieces; ++k) {  // a kernel thread per (piece, lane)
    const uint64_t first = k * kErrPiece, len = std::min(kErrPiece, n - first);
    double err[kErrLanes], sq[kErrLanes];
    for (unsigned l = 0; l < kErrLanes; ++l)
      quant_error_lane(p, q.mins.data(), q.steps.data(), group, bits, first, len, l, err[l], sq[l]);
    q.piece_err_sq[k] = add_lanes(err, kErrLanes);
    q.piece_delta_sq[k] = add_lanes(sq, kErrLanes);
  }
  nonfinite = bad;
  return q;
}

void quant_apply_reference(ElemType t, std::span<const uint8_t> base, const StoredQuant& q, float alpha,
                           std::span<uint8_t> out) {
  const uint64_t n = out.size() / elem_bytes(t);
  for (uint64_t i = 0; i < n; ++i)  // a kernel thread per entry
    store_elem(t, out.data(), i,
               quant_applied(t, base.data(), q.codes.data(), q.mins.data(), q.steps.data(), q.group, q.bits, alpha, i));
}

void combine_reference(const CombineEntryOptions& o, std::span<const float> base,
                       const std::vector<std::span<const float>>& tv, std::span<const double> weights,
                       std::span<float> out) {
  const uint64_t len = out.size();
  const unsigned m = static_cast<unsigned>(tv.size());
  std::vector<float> weighed(len * m);
  for (unsigned k = 0; k < m; ++k)  // a kernel thread per (model, entry)
    for (uint64_t j = 0; j < len; ++j) weighed[k * len + j] = tv[k][j] * static_cast<float>(weights[k]);
  for (uint64_t j = 0; j < len; ++j)  // a kernel thread per entry
    out[j] = combine_entry(o, base[j], weighed.data(), len, m, weights.data(), j);
}

void dare_apply_reference(ElemType t, std::span<const uint8_t> base, std::span<const uint64_t> positions,
                          std::span<const uint8_t> values, float alpha, std::span<uint8_t> out) {
  const uint64_t n = out.size() / elem_bytes(t);
  std::vector<float> dense(n, 0.0f);
  for (uint64_t j = 0; j < positions.size(); ++j)  // a kernel thread per kept entry
    dense[positions[j]] = load_elem(t, values.data(), j);
  for (uint64_t i = 0; i < n; ++i)  // a kernel thread per entry
    store_elem(t, out.data(), i, sparse_applied(t, base.data(), dense.data(), alpha, i));
}

}  // namespace deltakit::gpu
