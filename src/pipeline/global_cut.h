// An exact model-wide top-k over scores that live on many ranks (cherry/topk with scope=model).
// No rank ever holds more than one tensor's scores:
//   1. every rank histograms the high 16 bits of its scores' keys (score_cut.h), one all-reduce
//      of 65,536 counts finds the bucket where the k-th largest key falls;
//   2. a second pass histograms the low 16 bits inside that bucket; a second all-reduce gives
//      the exact k-th key T and how many entries equal to T still fit;
//   3. an all-reduce of per-tensor tie counts hands those remaining slots to the tied entries
//      in (tensor, index) order, so the result is the same for any number of ranks.
// Given the pool's element count, the first pass keeps each tensor's keys from its top buckets
// (4x its share of the budget, up to `keep_bytes` in all), so the second pass scores a tensor
// again (scores_of called twice) only where the global bucket falls below what it kept; memory
// stays at one tensor plus keep_bytes. Without it, every tensor is scored twice.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "src/codec/score_cut.h"
#include "src/core/comm.h"

namespace deltakit {

// Pool tensors are numbered 0..pool_size-1 the same way on every rank; `local` are the ones
// this rank scores. Returns the cut of every pool tensor, identical on every rank; in all they
// keep exactly min(budget, total entries).
std::vector<ScoreCut> find_global_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                                      const std::function<std::vector<float>(size_t)>& scores_of,
                                      uint64_t pool_elements = 0, uint64_t keep_bytes = uint64_t{256} << 20);

}  // namespace deltakit
