#include "src/pipeline/global_cut.h"

#include <map>

namespace deltakit {

std::vector<ScoreCut> find_global_cut(Comm& comm, size_t pool_size, const std::vector<size_t>& local, uint64_t budget,
                                      const std::function<std::vector<float>(size_t)>& scores_of) {
  std::vector<ScoreCut> cuts(pool_size);  // default: nothing kept
  std::vector<uint64_t> high(kScoreBuckets, 0);
  for (size_t t : local)
    for (float s : scores_of(t)) ++high[score_key(s) >> 16];
  comm.allreduce_sum(high);
  uint64_t total = 0;
  for (uint64_t c : high) total += c;
  const uint64_t k = std::min(budget, total);
  if (k == 0) return cuts;

  const auto [hb, above_bucket] = find_bucket(high, k);
  std::vector<uint64_t> low(kScoreBuckets, 0);
  std::vector<std::map<uint32_t, uint64_t>> local_low(local.size());  // per tensor: low bits -> count
  for (size_t j = 0; j < local.size(); ++j)
    for (float s : scores_of(local[j])) {
      const uint32_t key = score_key(s);
      if ((key >> 16) != hb) continue;
      ++low[key & 0xffff];
      ++local_low[j][key & 0xffff];
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
