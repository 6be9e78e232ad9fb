#include "src/codec/score_cut.h"

namespace deltakit {

std::vector<uint64_t> select_by_cut(std::span<const float> scores, const ScoreCut& cut) {
  std::vector<uint64_t> kept;
  uint64_t ties = cut.ties_keep;
  for (uint64_t i = 0; i < scores.size(); ++i) {
    const uint32_t k = score_key(scores[i]);
    if (k > cut.threshold) {
      kept.push_back(i);
    } else if (k == cut.threshold && ties) {
      kept.push_back(i);
      --ties;
    }
  }
  return kept;
}

}  // namespace deltakit
