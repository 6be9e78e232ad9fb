// An exact model-wide top-k over scores that live on many ranks (cherry/topk with scope=model).
// No rank ever holds more than a block of a tensor's scores, plus the keys it keeps:
//   1. every rank histograms the high 16 bits of its scores' keys (score_cut.h), one all-reduce
//      of 65,536 counts finds the bucket where the k-th largest key falls;
//   2. a second pass histograms the low 16 bits inside that bucket; a second all-reduce gives
//      the exact k-th key T and how many entries equal to T still fit;
//   3. an all-reduce of per-tensor tie counts hands those remaining slots to the tied entries
//      in (tensor, index) order, so the result is the same for any number of ranks.
// Given the pool's sizes, the first pass keeps each tensor's keys from its top buckets (4x its
// share of the budget, up to `keep_bytes` in all; while a tensor streams, its keys are pruned
// to the top buckets of what it has seen so far, which only rise), so the second pass scores a
// tensor again only where the global bucket falls below what it kept. Without sizes, every
// tensor is scored twice.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "src/codec/score_cut.h"
#include "src/core/comm.h"

namespace deltakit {

// Hands one tensor's scores to `visit` a block at a time, in index order.
using ScoreVisit = std::function<void(std::span<const float>)>;
using ScoreSource = std::function<void(size_t tensor, const ScoreVisit& visit)>;

// Pool tensors are numbered 0..pool_size-1 the same way on every rank; `local` are the ones
// this rank scores; `pool_sizes` (empty, or one per pool tensor) their score counts. Returns the
// cut of every pool tensor, identical on every rank; in all they keep exactly min(budget, total).
// `threads` score this rank's tensors side by side (scores_of is then called from them at once).
std::vector<ScoreCut> find_global_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                                      const ScoreSource& scores_of, const std::vector<uint64_t>& pool_sizes = {},
                                      uint64_t keep_bytes = uint64_t{256} << 20, unsigned threads = 1);

}  // namespace deltakit
