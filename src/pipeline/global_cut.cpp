#include "src/pipeline/global_cut.h"

#include <map>

namespace deltakit {

namespace {
// One local tensor's keys from its top buckets down to `from_bucket`, kept from the first pass so
// the second need not score it again when the global bucket falls inside them.
struct TopKeys {
  bool kept = false;
  uint32_t from_bucket = 0;
  std::vector<uint32_t> keys;
};
}  // namespace

std::vector<ScoreCut> find_global_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                                      const std::function<std::vector<float>(size_t)>& scores_of,
                                      uint64_t pool_elements, uint64_t keep_bytes) {
  std::vector<ScoreCut> cuts(pool_size);  // default: nothing kept
  std::vector<uint64_t> high(kScoreBuckets, 0), mine(kScoreBuckets);
  std::vector<TopKeys> top(local.size());
  uint64_t kept_bytes = 0;
  const double frac = pool_elements ? static_cast<double>(budget) / static_cast<double>(pool_elements) : 0;
  for (size_t j = 0; j < local.size(); ++j) {
    const std::vector<float> scores = scores_of(local[j]);
    std::fill(mine.begin(), mine.end(), 0);
    for (float x : scores) ++mine[score_key(x) >> 16];
    for (size_t b = 0; b < kScoreBuckets; ++b) high[b] += mine[b];
    if (frac == 0) continue;
    // keep the keys of the top buckets that hold 4x this tensor's share of the budget (and some):
    // the global bucket lands inside them unless this tensor's scores run far above the others'
    const uint64_t want = static_cast<uint64_t>(4 * frac * static_cast<double>(scores.size())) + 1024;
    auto [from, above] = find_bucket(mine, std::min<uint64_t>(want, scores.size()));
    const uint64_t count = above + mine[from];
    if (kept_bytes + count * 4 > keep_bytes) continue;
    kept_bytes += count * 4;
    TopKeys& t = top[j];
    t.kept = true, t.from_bucket = from;
    t.keys.reserve(count);
    for (float x : scores)
      if (const uint32_t key = score_key(x); (key >> 16) >= from) t.keys.push_back(key);
  }
  comm.allreduce_sum(high);
  uint64_t total = 0;
  for (uint64_t c : high) total += c;
  const uint64_t k = std::min(budget, total);
  if (k == 0) return cuts;

  const auto [boundary, above_bucket] = find_bucket(high, k);
  const uint32_t hb = boundary;  // (a lambda below uses it: clang 14 captures no structured binding)
  std::vector<uint64_t> low(kScoreBuckets, 0);
  std::vector<std::map<uint32_t, uint64_t>> local_low(local.size());  // per tensor: low bits -> count
  for (size_t j = 0; j < local.size(); ++j) {
    const auto count = [&](uint32_t key) {
      if ((key >> 16) != hb) return;
      ++low[key & 0xffff];
      ++local_low[j][key & 0xffff];
    };
    if (top[j].kept && top[j].from_bucket <= hb) {
      for (uint32_t key : top[j].keys) count(key);
    } else {
      for (float x : scores_of(local[j])) count(score_key(x));
    }
  }
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

}  // namespace deltakit
