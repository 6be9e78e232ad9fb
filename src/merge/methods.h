// The merge methods and what each one is made of (algorithms.md §8). Every method but
// linear and slerp is generalized task arithmetic: sparsify each task vector, weight, mix with or
// without sign consensus, optionally normalize, scale by lambda, add to the base. The defaults
// of normalize and rescale are mergekit's, so that its configs mean the same here.
//
//   method             sparsify            consensus  normalize  rescale
//   task_arithmetic    -                   -          false      -
//   ties               magnitude           sum        true       false
//   dare_ties          random              sum        false      true (l1)
//   dare_linear        random              -          false      true (l1)
//   breadcrumbs        magnitude_outliers  -          false      false
//   breadcrumbs_ties   magnitude_outliers  sum        false      false
//   della              della_magprune      sum        true       true (l1)
//   della_linear       della_magprune      -          false      true (l1)
//   magnitude_prune    magnitude           -          false      false   (ours: TIES's trim alone)
//   linear             θ = Σ w_i θ_i / Σ w_i (normalize, default true) — no base needed
//   slerp              base (t = 0) and one model (t = 1), spherical per tensor
//   nuslerp            two models, t = w_1/(w_0 + w_1), spherical per tensor, row or column;
//                      with a base_model, of the two task vectors, added to the base
//   multislerp         barycentric interpolation on the sphere of many models (or task vectors)
//   karcher            the Riemannian mean of every model's direction, the base's included
//   model_stock        base and mean of ≥ 2 models, interpolated by their offsets' angle
//   sce                variance-selected, sign-erased, energy-weighted task vectors
//   nearswap           per entry, the model where it is within t of the base
//   arcee_fusion       the base plus the delta's entries of outlying importance
//   passthrough        one model's tensor as it is (times `scale`); with `slices`, layer stacking
// (spherical_mean.h and selective_merge.h give each one's formula)
#pragma once

#include <span>
#include <string>
#include <vector>

#include "src/merge/combine.h"
#include "src/merge/selective_merge.h"
#include "src/merge/slerp.h"
#include "src/merge/sparsify.h"
#include "src/merge/spherical_mean.h"

namespace deltakit {

enum class MergeKind {
  TaskArithmetic,
  Linear,
  Slerp,
  NuSlerp,
  MultiSlerp,
  Karcher,
  ModelStock,
  Sce,
  NearSwap,
  ArceeFusion,
  Passthrough
};

struct MergeMethod {
  std::string name;
  MergeKind kind = MergeKind::TaskArithmetic;
  SparsifyMethod sparsify = SparsifyMethod::None;
  Consensus consensus = Consensus::None;
  bool default_normalize = false;
  bool default_rescale = false;
  bool needs_base = true;                    // base_model required
  bool needs_weight = false;                 // every model needs a weight
  int models_min = 1, models_max = 1 << 30;  // models besides the base
};

// Throws Error(InvalidValue) naming the known methods.
const MergeMethod& merge_method(const std::string& name);
std::vector<std::string> merge_method_names();

// Everything one tensor's merge needs, resolved for this tensor.
struct TensorMergeArgs {
  std::string name;
  uint64_t cols = 0;            // last dimension (della's and nuslerp's rows)
  uint64_t leading = 0;         // first dimension (nuslerp's columns)
  std::span<const float> base;  // θ_b (empty only for linear or nuslerp without a base)
  // θ_i; task-arithmetic methods overwrite them with w_i·sparsify(θ_i − θ_b), so that a merge of
  // k models holds k + 2 tensors in memory, not 2k + 2
  std::vector<std::span<float>> models;
  std::vector<double> weight, density, gamma, epsilon;  // per model
  bool normalize = false;
  RescaleNorm rescale = RescaleNorm::None;
  double lambda = 1.0, t = 0.5;
  NuSlerpVectors nuslerp_vectors = NuSlerpVectors::Flatten;
  std::vector<double> scale;      // passthrough, per model (1: as it is)
  bool filter_wise = false;       // model_stock
  double select_topk = 1.0;       // sce
  int max_iter = 10;              // karcher
  double tol = 1e-5;              // karcher
  bool normalize_weights = true;  // multislerp
  double eps = 1e-8;              // multislerp
  uint64_t seed = 0;              // model i's random masks use the counter RNG keyed (seed + i, tensor name)
};

// out: the merged tensor in fp32 (numel). Models are sparsified in parallel (OpenMP), each by one
// thread, so the result does not depend on the thread count.
void merge_tensor(const MergeMethod& m, TensorMergeArgs& a, std::span<float> out);

// Its generalized task arithmetic in two steps, for a caller that sparsifies itself (merge's
// streamed path): model j's sparsify options, and the rest once a.models hold the sparsified
// task vectors sparsify(θ_j − θ_b): weigh them and mix into θ.
SparsifyOptions sparsify_options(const MergeMethod& m, const TensorMergeArgs& a, size_t j);
void combine_task_vectors(const MergeMethod& m, TensorMergeArgs& a, std::span<float> out);

}  // namespace deltakit
