#include "src/merge/methods.h"

#include <cmath>

#include "src/core/error.h"
#include "src/merge/slerp.h"

namespace deltakit {

namespace {
const std::vector<MergeMethod>& registry() {
  using S = SparsifyMethod;
  using C = Consensus;
  using K = MergeKind;
  constexpr int any = 1 << 30;
  // name, kind, sparsify, consensus, normalize, rescale, needs base, needs weight, models min/max
  static const std::vector<MergeMethod> methods = {
      {"task_arithmetic", K::TaskArithmetic, S::None, C::None, false, false, true, true, 1, any},
      {"ties", K::TaskArithmetic, S::Magnitude, C::Sum, true, false, true, true, 1, any},
      {"dare_ties", K::TaskArithmetic, S::Random, C::Sum, false, true, true, true, 1, any},
      {"dare_linear", K::TaskArithmetic, S::Random, C::None, false, true, true, true, 1, any},
      {"breadcrumbs", K::TaskArithmetic, S::MagnitudeOutliers, C::None, false, false, true, true, 1, any},
      {"breadcrumbs_ties", K::TaskArithmetic, S::MagnitudeOutliers, C::Sum, false, false, true, true, 1, any},
      {"della", K::TaskArithmetic, S::DellaMagprune, C::Sum, true, true, true, true, 1, any},
      {"della_linear", K::TaskArithmetic, S::DellaMagprune, C::None, false, true, true, true, 1, any},
      {"magnitude_prune", K::TaskArithmetic, S::Magnitude, C::None, false, false, true, true, 1, any},
      {"linear", K::Linear, S::None, C::None, true, false, false, true, 1, any},
      {"slerp", K::Slerp, S::None, C::None, false, false, true, false, 1, 1},
      {"nuslerp", K::NuSlerp, S::None, C::None, false, false, false, true, 2, 2},
      {"multislerp", K::MultiSlerp, S::None, C::None, false, false, false, true, 1, any},
      {"karcher", K::Karcher, S::None, C::None, false, false, false, false, 1, any},
      {"model_stock", K::ModelStock, S::None, C::None, false, false, true, false, 2, any},
      {"sce", K::Sce, S::None, C::None, false, false, true, false, 1, any},
      {"nearswap", K::NearSwap, S::None, C::None, false, false, true, false, 1, 1},
      {"arcee_fusion", K::ArceeFusion, S::None, C::None, false, false, true, false, 1, 1},
      {"passthrough", K::Passthrough, S::None, C::None, false, false, false, false, 1, 1},
  };
  return methods;
}
}  // namespace

const MergeMethod& merge_method(const std::string& name) {
  for (const auto& m : registry())
    if (m.name == name) return m;
  std::string known;
  for (const auto& m : registry()) known += (known.empty() ? "" : ", ") + m.name;
  throw Error(ErrorCode::InvalidValue, "", "unknown merge_method \"" + name + "\" (" + known + ")");
}

std::vector<std::string> merge_method_names() {
  std::vector<std::string> names;
  for (const auto& m : registry()) names.push_back(m.name);
  return names;
}

void merge_tensor(const MergeMethod& m, TensorMergeArgs& a, std::span<float> out) {
  const size_t n = out.size(), k = a.models.size();
  switch (m.kind) {
    case MergeKind::MultiSlerp: multislerp(a.models, a.weight, a.base, a.normalize_weights, a.eps, out); return;
    case MergeKind::Karcher: {  // the base is one of the points (mergekit gathers it with the models)
      std::vector<std::span<const float>> points;
      if (!a.base.empty()) points.push_back(a.base);
      for (const auto& x : a.models) points.push_back(x);
      karcher_mean(points, a.max_iter, a.tol, out);
      return;
    }
    case MergeKind::ModelStock: model_stock(a.base, a.models, a.cols, a.filter_wise, out); return;
    case MergeKind::Sce: sce_merge(a.base, a.models, a.select_topk, out); return;
    case MergeKind::NearSwap: nearswap(a.base, a.models[0], a.t, out); return;
    case MergeKind::ArceeFusion: arcee_fusion(a.base, a.models[0], a.cols, out); return;
    case MergeKind::Passthrough: {
      const float s = static_cast<float>(a.scale.empty() ? 1.0 : a.scale[0]);
      for (size_t i = 0; i < n; ++i) out[i] = a.models[0][i] * s;
      return;
    }
    default: break;
  }
  if (m.kind == MergeKind::Slerp) {
    if (k != 1 || a.base.empty())
      throw Error(ErrorCode::InvalidValue, "", "slerp merges the base with exactly one model");
    slerp(a.t, a.base, a.models[0], out);
    return;
  }
  if (m.kind == MergeKind::NuSlerp) {
    if (k != 2)
      throw Error(ErrorCode::InvalidValue, "", "nuslerp merges exactly two models (besides an optional base_model)");
    const double total = a.weight[0] + a.weight[1];
    const double t = std::fabs(total) < 1e-6 ? 0.5 : a.weight[1] / total;  // mergekit's guard
    if (!a.base.empty())
      for (auto& model : a.models)
        for (size_t i = 0; i < n; ++i) model[i] -= a.base[i];
    nuslerp(t, a.models[0], a.models[1], a.leading, a.cols, a.nuslerp_vectors, out);
    if (!a.base.empty())
      for (size_t i = 0; i < n; ++i) out[i] += a.base[i];
    return;
  }
  if (m.kind == MergeKind::Linear) {
    double total = 0;
    for (double w : a.weight) total += w;
    if (a.normalize && total == 0)
      throw Error(ErrorCode::InvalidValue, "", "linear: the weights of '" + a.name + "' sum to 0");
    const double scale = a.normalize ? 1.0 / total : 1.0;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) {
      double s = 0;
      for (size_t j = 0; j < k; ++j) s += a.weight[j] * a.models[j][static_cast<size_t>(i)];
      out[static_cast<size_t>(i)] = static_cast<float>(s * scale);
    }
    return;
  }
  // generalized task arithmetic: w_i·sparsify(θ_i − θ_b), in place of θ_i
  std::string failure;
#pragma omp parallel for schedule(dynamic)
  for (int64_t jj = 0; jj < static_cast<int64_t>(k); ++jj) {
    const size_t j = static_cast<size_t>(jj);
    std::span<float> d = a.models[j];
    for (size_t i = 0; i < n; ++i) d[i] -= a.base[i];
    try {
      sparsify(d, a.cols, sparsify_options(m, a, j));
    } catch (const Error& e) {
#pragma omp critical
      failure = e.what();
    }
  }
  if (!failure.empty()) throw Error(ErrorCode::InvalidValue, "", failure);
  combine_task_vectors(m, a, out);
}

SparsifyOptions sparsify_options(const MergeMethod& m, const TensorMergeArgs& a, size_t j) {
  SparsifyOptions so;
  so.method = m.sparsify, so.density = a.density[j], so.gamma = a.gamma[j], so.epsilon = a.epsilon[j];
  so.rescale = a.rescale, so.seed = a.seed + j, so.rng_key = a.name;
  return so;
}

void combine_task_vectors(const MergeMethod& m, TensorMergeArgs& a, std::span<float> out) {
  for (size_t j = 0; j < a.models.size(); ++j) {
    const float w = static_cast<float>(a.weight[j]);
    for (auto& v : a.models[j]) v *= w;
  }
  std::vector<std::span<const float>> spans(a.models.begin(), a.models.end());
  CombineOptions co;
  co.consensus = m.consensus, co.normalize = a.normalize, co.lambda = a.lambda;
  combine_deltas(a.base, spans, a.weight, co, out);
}

}  // namespace deltakit
