// An exact model-wide top-k over scores that live on many ranks (cherry/topk with scope=model).
// No rank ever holds more than a block of a tensor's scores, plus the entries it keeps.
//
// First, one pass that is usually the only one: every rank keeps, for its tensors, each entry at
// or above a floor — its key, position and value — and raises the floor whenever the kept entries
// outgrow `keep_bytes` (to its own top min(k, half of that)). The cut found from the kept entries
// alone (the radix select below, over them) is the exact one when it lies at or above every
// rank's floor: every entry it keeps was kept. Then no tensor is scored again, and each tensor's
// selection (positions and values) is known, so its encoder need not score it again either.
//
// A tensor given by some of its entries whose `complete_from` lies above the cut found is scored
// again whole and the cut found again (once: a cut only rises as entries are added).
//
// Otherwise (a rank whose share of the cut outgrew `keep_bytes`), the radix select over every
// score, two passes of 2^16-bucket histograms:
//   1. every rank histograms the high 16 bits of its scores' keys (score_cut.h), one all-reduce
//      of 65,536 counts finds the bucket where the k-th largest key falls;
//   2. a second pass histograms the low 16 bits inside that bucket; a second all-reduce gives
//      the exact k-th key T and how many entries equal to T still fit;
//   3. an all-reduce of per-tensor tie counts hands those remaining slots to the tied entries
//      in (tensor, index) order, so the result is the same for any number of ranks.
// In this fallback, given the pool's sizes, its first pass keeps each tensor's keys from its top buckets (4x its
// share of the budget, up to `keep_bytes` in all; while a tensor streams, its keys are pruned
// to the top buckets of what it has seen so far, which only rise), so the second pass scores a
// tensor again only where the global bucket falls below what it kept. Without sizes, every
// tensor is scored twice.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "src/codec/score_cut.h"
#include "src/core/comm.h"

namespace deltakit {

// What one tensor's scoring hands the cut. Either every score, through `block` a block at a time
// in index order, with the values at the same positions (what a selection stores; empty where
// the source has none to give); or, where `some` is set and the source can, only some of its n
// entries (positions ascending across calls, with scores and values), every entry not given
// having a score key below `complete_from` (a source that scores where the scale is known:
// magnitude_kept.h).
// Where those do not reach the cut, the tensor is asked again, for every score.
using ScoreVisit = std::function<void(std::span<const float> scores, std::span<const float> values)>;
using SomeScoresVisit =
    std::function<void(uint64_t n, std::span<const uint64_t> positions, std::span<const float> scores,
                       std::span<const float> values, uint32_t complete_from)>;
struct ScoreVisitor {
  ScoreVisit block;
  SomeScoresVisit some;  // null: every score, by block
};
using ScoreSource = std::function<void(size_t tensor, const ScoreVisitor& visit)>;

struct GlobalCutOptions {
  std::vector<uint64_t> pool_sizes;  // empty, or every pool tensor's score count
  uint64_t keep_bytes = uint64_t{256} << 20;
  unsigned threads = 1;    // score this rank's tensors side by side (scores_of is then called at once)
  bool candidates = true;  // try the one-pass kept entries first
};

struct GlobalCut {
  std::vector<ScoreCut> cuts;  // every pool tensor's, identical on every rank
  // per local tensor (in `local`'s order): the entries its cut keeps, when the first pass held
  // them all with their values; nullopt where the cut must be applied to the scores again
  std::vector<std::optional<CutSelection>> selected;
};

// Pool tensors are numbered 0..pool_size-1 the same way on every rank; `local` are the ones this
// rank scores. In all the cuts keep exactly min(budget, total) entries.
GlobalCut find_global_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                          const ScoreSource& scores_of, const GlobalCutOptions& opt = {});

}  // namespace deltakit
