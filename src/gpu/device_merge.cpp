#include "src/gpu/device_merge.h"

#include <cmath>

namespace deltakit::gpu {

CombineEntryOptions combine_entry_options(const MergeMethod& m, const TensorMergeArgs& a) {
  CombineEntryOptions o;
  o.consensus = m.consensus == Consensus::Sum ? 1 : m.consensus == Consensus::Count ? 2 : 0;
  o.normalize = a.normalize, o.lambda = a.lambda;
  o.all_weights = 0;
  for (double w : a.weight) o.all_weights += w;
  if (std::fabs(o.all_weights) < 1e-8) o.all_weights = 1;  // combine_deltas' rule
  return o;
}

void combine_on(CudaDevice* dev, const MergeMethod& m, TensorMergeArgs& a, std::span<float> out) {
  if (!dev) return combine_task_vectors(m, a, out);
  const std::vector<std::span<const float>> tv(a.models.begin(), a.models.end());
  dev->combine(combine_entry_options(m, a), a.base, tv, a.weight, out);
}

}  // namespace deltakit::gpu
