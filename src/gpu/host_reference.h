// The GPU kernels' work done on the host by the same per-thread functions (pair_lanes.h), slice
// by slice in a loop: what the kernels must return, on any machine. The tests compare these
// with the CPU codec (bytes), and on a GPU the kernels with these.
#pragma once

#include <cstdint>
#include <span>

#include "src/codec/bitdelta.h"
#include "src/codec/quant.h"
#include "src/codec/sparse.h"
#include "src/core/tensor_view.h"
#include "src/gpu/pair_lanes.h"
#include "src/merge/combine_entry.h"

namespace deltakit::gpu {

// The element type of a float tensor; throws std::invalid_argument for others.
ElemType elem_type(DType t);
PairView pair_view(const TensorView& base, const TensorView& ft);

// The statistics of one-level BitDelta over the pair's δ in BitDeltaLayout's order, and whether
// an entry of δ was not finite (the CPU then stores the tensor raw).
BitDeltaSums bitdelta_sums_reference(const PairView& p, const BitDeltaLayout& layout, bool& nonfinite);

// Which scale each entry of a stored one-level BitDelta tensor with rows of `cols` uses.
UnitMap unit_map_of(const OneLevelBitDelta& b, uint64_t cols);

// base + α·δ̂ for one-level BitDelta's signs and per-unit scales, in the base's type.
void bitdelta_apply_reference(ElemType t, std::span<const uint8_t> base, std::span<const uint8_t> signs,
                              std::span<const float> scales, const UnitMap& units, float alpha, std::span<uint8_t> out);

// DARE's draw for a tensor (its Philox stream keyed by seed and name, threshold, rescale).
DareDraw dare_draw(const DareParams& prm, std::string_view tensor_name);
// DARE alone's pass over the pair's n entries: a kernel thread per 32-entry word for the keep
// bits, their counts scanned into slots, a thread per word for the kept entries, a thread per
// (piece, lane) for the error; `nonfinite` as bitdelta_sums_reference's.
DareKept dare_kept_reference(const PairView& p, const DareDraw& d, uint64_t n, bool& nonfinite);
// Quant alone's pass over the pair's n entries (groups of G, G·bits a multiple of 8): a kernel
// thread per group for its range and codes, then a thread per (piece, lane) for the error.
QuantGroups quant_groups_reference(const PairView& p, unsigned bits, uint64_t group, uint64_t n, bool& nonfinite);
// base + α·δ̂ for quant's stored codes, mins and steps (in the base's type t).
void quant_apply_reference(ElemType t, std::span<const uint8_t> base, const StoredQuant& q, float alpha,
                           std::span<uint8_t> out);
// A merge's mix: each task vector weighed, then combine_entry per entry (a kernel thread per
// (model, entry), then per entry).
void combine_reference(const CombineEntryOptions& o, std::span<const float> base,
                       const std::vector<std::span<const float>>& tv, std::span<const double> weights,
                       std::span<float> out);
// base + α·δ̂ for DARE's stored positions and values (in the base's type t).
void dare_apply_reference(ElemType t, std::span<const uint8_t> base, std::span<const uint64_t> positions,
                          std::span<const uint8_t> values, float alpha, std::span<uint8_t> out);

}  // namespace deltakit::gpu
