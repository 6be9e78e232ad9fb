// Selection by a model-wide cut on scores (cherry or topk with scope=model). Non-negative fp32
// scores are ordered like their bit patterns, so a cut is a 32-bit key: keep every entry whose
// key is above `threshold`, plus the first `ties_keep` entries (lowest index first) whose key
// equals it. src/pipeline/global_cut.h finds the cut over all ranks' tensors exactly.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace deltakit {

struct ScoreCut {
  uint32_t threshold = UINT32_MAX;  // no finite score's key exceeds it: nothing kept
  uint64_t ties_keep = 0;
};

// NaN and negative scores (which valid inputs never give) count as 0.
inline uint32_t score_key(float s) {
  if (!(s > 0.0f)) return 0;
  uint32_t k;
  std::memcpy(&k, &s, 4);
  return k;
}

// Sorted positions selected by the cut.
std::vector<uint64_t> select_by_cut(std::span<const float> scores, const ScoreCut& cut);

}  // namespace deltakit
