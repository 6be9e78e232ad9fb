#include "src/pipeline/global_cut.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <stdexcept>

#include "src/core/parallel.h"
#include "src/pipeline/cut_candidates.h"

namespace deltakit {

namespace {
// One local tensor's keys from its top buckets down to `from_bucket`, kept from the first pass so
// the second need not score it again when the global bucket falls inside them.
struct TopKeys {
  bool kept = false;
  uint32_t from_bucket = 0;
  std::vector<uint32_t> keys;
};

// score_key over a block (it vectorizes: score_cut.h)
void keys_of(std::span<const float> block, std::vector<uint32_t>& keys) {
  keys.resize(block.size());
  for (size_t i = 0; i < block.size(); ++i) keys[i] = score_key(block[i]);
}

// ++hist[key >> 16] over a block's keys, in two interleaved histograms: a run of equal buckets
// (scores crowd into a few) then waits on two store-to-load chains, not one.
void add_high_bits(std::span<const uint32_t> keys, std::vector<uint32_t>& even, std::vector<uint32_t>& odd) {
  uint64_t i = 0;
  for (; i + 2 <= keys.size(); i += 2) {
    ++even[keys[i] >> 16];
    ++odd[keys[i + 1] >> 16];
  }
  if (i < keys.size()) ++even[keys[i] >> 16];
}

// keys at or above bucket `from` appended to out; 16 at a time are first asked whether any is
void append_from(std::span<const uint32_t> keys, uint32_t from, std::vector<uint32_t>& out) {
  const uint32_t floor = from << 16;
  size_t i = 0;
  for (; i + 16 <= keys.size(); i += 16) {
    uint32_t any = 0;
    for (size_t l = 0; l < 16; ++l) any |= keys[i + l] >= floor;
    if (any)
      for (size_t l = 0; l < 16; ++l)
        if (keys[i + l] >= floor) out.push_back(keys[i + l]);
  }
  for (; i < keys.size(); ++i)
    if (keys[i] >= floor) out.push_back(keys[i]);
}

void keep_from(std::vector<uint32_t>& keys, uint32_t from) {
  size_t w = 0;
  for (uint32_t key : keys)
    if ((key >> 16) >= from) keys[w++] = key;
  keys.resize(w);
}

// One tensor's first pass: its high-bit histogram into `mine`, and the keys of its top buckets
// into `t` where they fit the shared budget.
struct FirstPass {
  std::vector<uint64_t> mine = std::vector<uint64_t>(kScoreBuckets, 0);
  std::vector<uint32_t> even = std::vector<uint32_t>(kScoreBuckets, 0), odd = std::vector<uint32_t>(kScoreBuckets, 0);
  std::vector<uint32_t> block_keys;
  uint64_t unflushed = 0;

  void flush() {  // the 32-bit counts into the tensor's histogram
    for (size_t b = 0; b < kScoreBuckets; ++b) mine[b] += uint64_t{even[b]} + odd[b];
    std::fill(even.begin(), even.end(), 0);
    std::fill(odd.begin(), odd.end(), 0);
    unflushed = 0;
  }

  // `budget_left` says whether `bytes` more of kept keys still fit (and takes them if asked)
  template <class Budget>
  void run(size_t tensor, uint64_t n, double frac, const ScoreSource& scores_of, TopKeys& t, Budget budget_left) {
    // keep the keys of the top buckets that hold 4x this tensor's share of the budget (and some):
    // the global bucket lands inside them unless this tensor's scores run far above the others'
    const uint64_t want = std::min<uint64_t>(static_cast<uint64_t>(4 * frac * static_cast<double>(n)) + 1024, n);
    bool keeping = frac > 0;
    uint32_t from = 0;  // provisional: the top buckets of the scores seen so far, which only rise
    uint64_t seen = 0, prune_at = 2 * want + 65536;
    scores_of(tensor, {[&](std::span<const float> block, std::span<const float>) {
                         seen += block.size();
                         if (unflushed + block.size() >= (uint64_t{1} << 31)) flush();
                         unflushed += block.size();
                         keys_of(block, block_keys);
                         add_high_bits(block_keys, even, odd);
                         if (!keeping) return;
                         append_from(block_keys, from, t.keys);
                         if (t.keys.size() > prune_at) {  // prune to the top buckets of what was seen
                           flush();
                           from = find_bucket(mine, want).first;
                           keep_from(t.keys, from);
                           prune_at = 2 * t.keys.size();
                           // a bucket crowded far past the share (bf16 δ: every unchanged entry scores the same) is
                           // cheaper scored again than held and pruned
                           if (!budget_left(t.keys.size() * 4, false) || t.keys.size() > 3 * want + 65536)
                             keeping = false, t.keys = {};
                         }
                       },
                       nullptr});
    flush();
    if (keeping && seen == n) {
      from = find_bucket(mine, want).first;
      keep_from(t.keys, from);
      if (budget_left(t.keys.size() * 4, true)) {
        t.keys.shrink_to_fit();
        t.kept = true, t.from_bucket = from;
        return;
      }
    }
    t.keys = {};
  }
};
// The radix select over every score (the header's second way).
std::vector<ScoreCut> histogram_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                                    const ScoreSource& scores_of, const GlobalCutOptions& opt) {
  const std::vector<uint64_t>& pool_sizes = opt.pool_sizes;
  const uint64_t keep_bytes = opt.keep_bytes;
  const unsigned threads = opt.threads;
  uint64_t pool_elements = 0;
  for (uint64_t n : pool_sizes) pool_elements += n;
  const double frac = pool_elements ? static_cast<double>(budget) / static_cast<double>(pool_elements) : 0;
  std::vector<ScoreCut> cuts(pool_size);  // default: nothing kept
  std::vector<uint64_t> high(kScoreBuckets, 0);
  std::vector<TopKeys> top(local.size());
  std::mutex mutex;  // over high and kept_bytes
  uint64_t kept_bytes = 0;
  // tensors side by side: their histograms are integer counts and their kept keys their own, so
  // the cut does not depend on the order (only which tensors are scored again may)
  parallel_blocks(local.size(), 1, threads, [&](uint64_t j, uint64_t, uint64_t) {
    FirstPass pass;
    pass.run(local[j], pool_sizes.empty() ? 0 : pool_sizes[local[j]], frac, scores_of, top[j],
             [&](uint64_t bytes, bool take) {
               std::lock_guard<std::mutex> lock(mutex);
               if (kept_bytes + bytes > keep_bytes) return false;
               if (take) kept_bytes += bytes;
               return true;
             });
    std::lock_guard<std::mutex> lock(mutex);
    for (size_t b = 0; b < kScoreBuckets; ++b) high[b] += pass.mine[b];
  });
  comm.allreduce_sum(high);
  uint64_t total = 0;
  for (uint64_t c : high) total += c;
  const uint64_t k = std::min(budget, total);
  if (k == 0) return cuts;

  const auto [boundary, above_bucket] = find_bucket(high, k);
  const uint32_t hb = boundary;  // (a lambda below uses it: clang 14 captures no structured binding)
  std::vector<std::map<uint32_t, uint64_t>> local_low(local.size());  // per tensor: low bits -> count
  parallel_blocks(local.size(), 1, threads, [&](uint64_t j, uint64_t, uint64_t) {
    const auto count = [&](uint32_t key) {
      if ((key >> 16) == hb) ++local_low[j][key & 0xffff];
    };
    if (top[j].kept && top[j].from_bucket <= hb) {
      for (uint32_t key : top[j].keys) count(key);
    } else {
      scores_of(local[j], {[&](std::span<const float> block, std::span<const float>) {
                             for (float x : block) count(score_key(x));
                           },
                           nullptr});
    }
  });
  std::vector<uint64_t> low(kScoreBuckets, 0);
  for (const auto& m : local_low)
    for (const auto& [bits, c] : m) low[bits] += c;
  comm.allreduce_sum(low);
  const auto [lb, above_value] = find_bucket(low, k - above_bucket);
  const uint32_t threshold = (hb << 16) | lb;
  uint64_t ties_left = k - above_bucket - above_value;

  std::vector<uint64_t> ties(pool_size, 0);
  for (size_t j = 0; j < local.size(); ++j) {
    auto it = local_low[j].find(lb);
    if (it != local_low[j].end()) ties[local[j]] = it->second;
  }
  comm.allreduce_sum(ties);
  for (size_t t = 0; t < pool_size; ++t) {
    cuts[t].threshold = threshold;
    cuts[t].ties_keep = std::min(ties_left, ties[t]);
    ties_left -= cuts[t].ties_keep;
  }
  return cuts;
}

// Whether a rank's share of the cut is likely to fit what the kept entries may hold (a third of
// keep_bytes at 12 bytes an entry): a share is at most k, and about k over the ranks (twice that
// for an unlucky rank); where it is not, the first pass would only be scored again. Every rank
// must decide alike (the all-reduces that follow differ), so this asks nothing of its own.
bool candidates_may_fit(const Comm& comm, uint64_t budget, const GlobalCutOptions& opt) {
  const uint64_t ranks = static_cast<uint64_t>(comm.size());
  return std::min(budget, 2 * budget / ranks) <= opt.keep_bytes / KeptChunk::kEntryBytes / 3;
}

// The local tensors `which` scored into the pool, side by side; `some`: a source may give some
// entries only. scored[j]: how many entries tensor j has.
void score_into(CandidatePool& pool, const std::vector<size_t>& local, const std::vector<size_t>& which, bool some,
                const ScoreSource& scores_of, unsigned threads, std::vector<uint64_t>& scored) {
  parallel_blocks(which.size(), 1, threads, [&](uint64_t w, uint64_t, uint64_t) {
    const size_t j = which[w];
    // a thread's staging reused from tensor to tensor: sized once, not faulted in per tensor
    thread_local StagedEntries staged;
    staged.n = 0;
    uint64_t first = 0;
    ScoreVisitor visit{[&](std::span<const float> scores, std::span<const float> values) {
                         pool.add(j, first, scores, values, staged);
                         first += scores.size();
                       },
                       nullptr};
    if (some)
      visit.some = [&](uint64_t n, std::span<const uint64_t> positions, std::span<const float> scores,
                       std::span<const float> values, uint32_t complete_from) {
        pool.add_some(j, positions, scores, values, complete_from, staged);
        first = n;
      };
    scores_of(local[j], visit);
    pool.hand_over(j, staged);
    scored[j] = first;
  });
}

// The cut of the pool's entries: the radix select over them, one all-reduce per histogram.
// `outcome` comes back all-reduced: [ranks whose floor lies above the cut, tensors given by some
// entries not complete down to it]; `incomplete` lists this rank's.
std::vector<ScoreCut> cut_of_pool(Comm& comm, CandidatePool& pool, size_t pool_size, const std::vector<size_t>& local,
                                  uint64_t budget, const std::vector<uint64_t>& scored, uint64_t outcome[2],
                                  std::vector<size_t>& incomplete) {
  std::vector<ScoreCut> cuts(pool_size);  // default: nothing kept
  outcome[0] = outcome[1] = 0;
  incomplete.clear();
  std::vector<uint64_t> high = pool.high_counts();  // and the counts of scores and of held entries
  uint64_t held = 0, total = 0;
  for (uint64_t c : high) held += c;
  for (uint64_t n : scored) total += n;
  high.push_back(total);
  high.push_back(held);
  comm.allreduce_sum(high);
  const uint64_t k = std::min(budget, high[kScoreBuckets]);
  if (k == 0) return cuts;
  if (high[kScoreBuckets + 1] < k) {  // the floors dropped entries the cut needs
    outcome[0] = 1;
    return cuts;
  }
  high.resize(kScoreBuckets);
  const auto [boundary, above_bucket] = find_bucket(high, k);
  const uint32_t hb = boundary;  // (a lambda below uses it: clang 14 captures no structured binding)
  std::vector<uint64_t> low(kScoreBuckets, 0);
  for (size_t j = 0; j < local.size(); ++j)
    pool.entries(j).for_each([&](uint32_t key, uint64_t, float) {
      if ((key >> 16) == hb) ++low[key & 0xffffu];
    });
  comm.allreduce_sum(low);
  const auto [lb, above_value] = find_bucket(low, k - above_bucket);
  const uint32_t threshold = (hb << 16) | lb;
  // per pool tensor its entries tied at the threshold, then the outcome's two counts
  std::vector<uint64_t> ties(pool_size + 2, 0);
  for (size_t j = 0; j < local.size(); ++j) {
    pool.entries(j).for_each([&](uint32_t key, uint64_t, float) { ties[local[j]] += key == threshold; });
    if (pool.complete_from(j) > threshold && pool.floor() <= threshold) incomplete.push_back(j);
  }
  ties[pool_size] = pool.floor() > threshold || pool.too_wide();
  ties[pool_size + 1] = incomplete.size();
  comm.allreduce_sum(ties);
  outcome[0] = ties[pool_size], outcome[1] = ties[pool_size + 1];
  uint64_t ties_left = k - above_bucket - above_value;
  for (size_t t = 0; t < pool_size; ++t) {
    cuts[t].threshold = threshold;
    cuts[t].ties_keep = std::min(ties_left, ties[t]);
    ties_left -= cuts[t].ties_keep;
  }
  return cuts;
}

// The cut from the kept entries alone, or nullopt where it may not be the exact one (then every
// rank says so: the decision is all-reduced).
std::optional<GlobalCut> candidate_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                                       const ScoreSource& scores_of, const GlobalCutOptions& opt) {
  CandidatePool pool(local.size(), budget, opt.keep_bytes);
  std::vector<uint64_t> scored(local.size(), 0);
  std::vector<size_t> all(local.size()), incomplete;
  for (size_t j = 0; j < all.size(); ++j) all[j] = j;
  score_into(pool, local, all, /*some=*/true, scores_of, opt.threads, scored);
  uint64_t outcome[2];
  GlobalCut out;
  out.cuts = cut_of_pool(comm, pool, pool_size, local, budget, scored, outcome, incomplete);
  if (outcome[0] == 0 && outcome[1] != 0) {
    // tensors whose given entries stop above the cut: scored again whole (every rank takes part
    // in the all-reduces, with or without its own); adding entries only raises the cut, so the
    // others stay complete down to it
    for (size_t j : incomplete) pool.clear(j);
    score_into(pool, local, incomplete, /*some=*/false, scores_of, opt.threads, scored);
    out.cuts = cut_of_pool(comm, pool, pool_size, local, budget, scored, outcome, incomplete);
    if (outcome[1] != 0) throw std::logic_error("find_global_cut: a tensor scored whole is still incomplete");
  }
  if (outcome[0] != 0) return std::nullopt;
  out.selected.resize(local.size());
  for (size_t j = 0; j < local.size(); ++j) {
    const KeptEntries& held_j = pool.entries(j);
    if (pool.valued(j)) {
      CutSelection sel;
      ScoreCut cut = out.cuts[local[j]];  // spent here in index order, as the encoder would
      ScoreCut count = cut;               // sized first: growing by doubling copies and faults in every step
      uint64_t kept = 0;
      held_j.for_each([&](uint32_t key, uint64_t, float) { kept += count.keep(key); });
      sel.positions.reserve(kept), sel.values.reserve(kept);
      held_j.for_each([&](uint32_t key, uint64_t position, float value) {
        if (cut.keep(key)) sel.positions.push_back(position), sel.values.push_back(value);
      });
      out.selected[j] = std::move(sel);
    }
    pool.release(j);  // its memory to the next selection
  }
  return out;
}

}  // namespace

GlobalCut find_global_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                          const ScoreSource& scores_of, const GlobalCutOptions& opt) {
  if (!opt.pool_sizes.empty() && opt.pool_sizes.size() != pool_size)
    throw std::logic_error("find_global_cut: pool_sizes must give every pool tensor's count");
  if (opt.candidates && candidates_may_fit(comm, budget, opt))
    if (std::optional<GlobalCut> cut = candidate_cut(comm, pool_size, local, budget, scores_of, opt)) return *cut;
  GlobalCut out;
  out.cuts = histogram_cut(comm, pool_size, local, budget, scores_of, opt);
  out.selected.resize(local.size());
  return out;
}

}  // namespace deltakit
