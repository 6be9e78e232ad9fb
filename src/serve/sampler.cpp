#include "src/serve/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "src/core/philox.h"

namespace deltakit {

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t step) {
  const auto best = std::max_element(logits.begin(), logits.end());
  if (p.temperature <= 0) return static_cast<int32_t>(best - logits.begin());
  const size_t V = logits.size();
  std::vector<double> prob(V);
  double sum = 0;
  for (size_t i = 0; i < V; ++i) sum += prob[i] = std::exp((double(logits[i]) - *best) / p.temperature);
  std::vector<int32_t> ids(V);
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) { return prob[a] > prob[b]; });
  // the nucleus: the most likely tokens up to top_p of the mass (at least one)
  size_t keep = 0;
  double mass = 0;
  while (keep < V && (keep == 0 || mass < p.top_p * sum)) mass += prob[ids[keep++]];
  const double u = TensorRng(p.seed, "sample").word(step) * 0x1p-32 * mass;
  double acc = 0;
  for (size_t j = 0; j < keep; ++j)
    if ((acc += prob[ids[j]]) > u) return ids[j];
  return ids[keep - 1];
}

}  // namespace deltakit
