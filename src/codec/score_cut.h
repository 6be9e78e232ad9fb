// Selection by a cut on scores: top-k without sorting. Non-negative fp32 scores are ordered like
// their bit patterns, so a cut is a 32-bit key: keep every entry whose key is above `threshold`,
// plus the first `ties_keep` entries (lowest index first) whose key equals it. The cut is found by
// a radix select, two passes of 2^16-bucket histograms over the keys: over all ranks' tensors for
// a model-wide cut (cherry or topk with scope=model, src/pipeline/global_cut.h), over one tensor's
// magnitudes for the topk codec and the merges' TIES trim (magnitude_cut below).
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <utility>
#include <vector>

namespace deltakit {

struct ScoreCut {
  uint32_t threshold = UINT32_MAX;  // no finite score's key exceeds it: nothing kept
  uint64_t ties_keep = 0;

  // Ask each candidate's key once, in index order: spends `ties_keep`. Branch-free: with random
  // magnitudes a branch mispredicts half the time.
  bool keep(uint32_t key) {
    const bool tie = (key == threshold) & (ties_keep > 0);
    ties_keep -= tie;
    return (key > threshold) | tie;
  }
};

// NaN and negative scores (which valid inputs never give) count as 0. On the bits alone: a
// positive finite score or +Inf keeps its bits (in [1, 0x7f800000]), anything else is 0 — integer
// compares, so the loops over keys vectorize where float compares (trapping math) do not.
inline uint32_t score_key(float s) {
  uint32_t k;
  std::memcpy(&k, &s, 4);
  return k - 1u < 0x7f800000u ? k : 0u;
}

// fn(i) for each entry the cut keeps, asking each key once in index order (so `cut` spends its
// ties as select_by_cut does; it may go on over the next scores of the same tensor). 16 keys at
// a time are first asked whether any reaches the threshold: below it keep() is false and spends
// nothing, so a cut that keeps 1% skips almost every group.
template <class Fn>
void for_each_kept(std::span<const float> scores, ScoreCut& cut, Fn fn) {
  const uint64_t n = scores.size();
  uint64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint32_t any = 0;
    for (uint64_t l = 0; l < 16; ++l) any |= score_key(scores[i + l]) >= cut.threshold;
    if (!any) continue;
    for (uint64_t l = 0; l < 16; ++l)
      if (cut.keep(score_key(scores[i + l]))) fn(i + l);
  }
  for (; i < n; ++i)
    if (cut.keep(score_key(scores[i]))) fn(i);
}

// |x| as a score (magnitude top-k): score_key(|x|) computed on the bits, NaN as 0. (Through
// fabs and score_key's float compare the TIES trim's histogram passes ran measurably slower.)
inline uint32_t magnitude_key(float x) {
  uint32_t k;
  std::memcpy(&k, &x, 4);
  k &= 0x7fffffffu;
  return k > 0x7f800000u ? 0 : k;
}

constexpr size_t kScoreBuckets = size_t{1} << 16;
// The bucket b of a kScoreBuckets histogram where the count from the top reaches `need`, and the
// count strictly above b.
std::pair<uint32_t, uint64_t> find_bucket(const std::vector<uint64_t>& hist, uint64_t need);

// magnitude_cut in passes over values handed in blocks, in index order: while !done(), add()
// every block, then next(); at most two passes (none for k = 0).
class MagnitudeCutBuilder {
 public:
  explicit MagnitudeCutBuilder(uint64_t k);
  ~MagnitudeCutBuilder();  // the counting tables, cleared, back to the thread's spares
  MagnitudeCutBuilder(MagnitudeCutBuilder&& o) noexcept;
  MagnitudeCutBuilder& operator=(MagnitudeCutBuilder&&) = delete;
  MagnitudeCutBuilder(const MagnitudeCutBuilder&) = delete;
  bool done() const { return done_; }
  void add(std::span<const float> x, std::span<const uint8_t> skip = {});
  void next();
  ScoreCut cut() const { return cut_; }

  // The counts of a pass. A tensor's magnitudes fall in a few hundred of the 2^16 buckets, so
  // only the buckets touched are ever summed, searched or cleared; tables are lent from one
  // builder to the next on a thread, always cleared, so none is zero-filled per tensor.
  // Pass 0 counts into kLanes interleaved 32-bit lanes per bucket (entry i in lane i % kLanes):
  // a count per bucket made every increment wait for the last one to the same address (a
  // store-to-load chain). Pass 1 counts the few entries of the cut's bucket into hist directly.
  static constexpr size_t kLanes = 4;
  struct Tables {
    uint64_t hist[kScoreBuckets];
    uint32_t lanes[kScoreBuckets * kLanes];
  };

 private:
  void flush();       // the lanes' counts in [lo_, top_] into hist, lanes cleared there
  void clear_hist();  // hist cleared in [lo_, top_], the range emptied
  std::pair<uint32_t, uint64_t> find(uint64_t need) const;  // find_bucket over [lo_, top_]
  uint64_t k_;
  bool done_;
  int pass_ = 0;
  Tables* t_ = nullptr;                 // taken at the first add
  uint32_t lo_ = UINT32_MAX, top_ = 0;  // the buckets touched, [lo_, top_] (empty: lo_ > top_)
  uint64_t in_lanes_ = 0;
  uint64_t candidates_ = 0, above_bucket_ = 0;
  uint32_t hi_ = 0;  // pass 1: the high 16 bits of the cut's bucket
  ScoreCut cut_;     // default: nothing kept
};

// The cut keeping the k largest |x| among the entries not marked in `skip` (empty: none skipped;
// k above the candidates keeps them all). Skipped entries must not be asked (keep()).
ScoreCut magnitude_cut(std::span<const float> x, uint64_t k, std::span<const uint8_t> skip = {});

// Sorted positions selected by the cut.
std::vector<uint64_t> select_by_cut(std::span<const float> scores, const ScoreCut& cut);

// What a cut keeps of one tensor, found without its scores at hand (src/pipeline/global_cut.h):
// the positions, ascending, and the values there.
struct CutSelection {
  std::vector<uint64_t> positions;
  std::vector<float> values;
};

}  // namespace deltakit
