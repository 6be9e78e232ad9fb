#include "src/merge/spherical_mean.h"

#include <algorithm>
#include <cmath>

#include "src/core/error.h"

namespace deltakit {

namespace {
double dot(std::span<const float> a, std::span<const float> b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}
}  // namespace

void multislerp(std::span<const std::span<float>> models, std::span<const double> weights, std::span<const float> base,
                bool normalize_weights, double eps, std::span<float> out) {
  const size_t k = models.size(), n = out.size();
  if (k == 1) {  // nothing to interpolate: the model as it is
    std::copy(models[0].begin(), models[0].end(), out.begin());
    return;
  }
  if (!base.empty())
    for (auto& m : models)
      for (size_t i = 0; i < n; ++i) m[i] -= base[i];
  std::vector<double> w(weights.begin(), weights.end());
  if (normalize_weights) {
    double total = 0;
    for (double x : w) total += x;
    for (double& x : w) x /= total;
  }
  std::vector<double> norm(k);
  for (size_t j = 0; j < k; ++j) norm[j] = std::sqrt(dot(models[j], models[j]));
  std::vector<double> mean(n, 0.0);  // Σ w_j u_j
  for (size_t j = 0; j < k; ++j) {
    const double c = w[j] / (norm[j] + eps);
    for (size_t i = 0; i < n; ++i) mean[i] += c * models[j][i];
  }
  double mean_norm = 0;
  for (double x : mean) mean_norm += x * x;
  mean_norm = std::sqrt(mean_norm);
  if (mean_norm < eps) {
    if (k != 2)
      throw Error(ErrorCode::InvalidValue, "",
                  "multislerp: the weighted directions cancel out (antipodal models with balancing weights)");
    for (size_t i = 0; i < n; ++i) {
      const double v = w[0] * models[0][i] + w[1] * models[1][i];
      out[i] = static_cast<float>(base.empty() ? v : v + base[i]);
    }
    return;
  }
  for (double& x : mean) x /= mean_norm;
  std::vector<double> tangent(n, 0.0);  // Σ w_j (u_j − (u_j·m) m)
  for (size_t j = 0; j < k; ++j) {
    const double inv = 1.0 / (norm[j] + eps);
    double d = 0;
    for (size_t i = 0; i < n; ++i) d += models[j][i] * inv * mean[i];
    for (size_t i = 0; i < n; ++i) tangent[i] += w[j] * (models[j][i] * inv - d * mean[i]);
  }
  double tn = 0;
  for (double x : tangent) tn += x * x;
  tn = std::sqrt(tn) + eps;
  double scale = 0;
  for (size_t j = 0; j < k; ++j) scale += norm[j] * w[j];
  const double c = std::cos(tn), s = std::sin(tn) / tn;
  for (size_t i = 0; i < n; ++i) {
    const double v = (mean[i] * c + tangent[i] * s) * scale;
    out[i] = static_cast<float>(base.empty() ? v : v + base[i]);
  }
}

void karcher_mean(std::span<const std::span<const float>> points, int max_iter, double tol, std::span<float> out) {
  const size_t k = points.size(), n = out.size();
  if (k == 1) {
    std::copy(points[0].begin(), points[0].end(), out.begin());
    return;
  }
  const double alpha = 1.0 / static_cast<double>(k);
  std::vector<double> norm(k);
  std::vector<size_t> valid;
  for (size_t j = 0; j < k; ++j) {
    norm[j] = std::sqrt(dot(points[j], points[j]));
    if (norm[j] > tol) valid.push_back(j);
  }
  if (valid.empty()) {
    std::fill(out.begin(), out.end(), 0.0f);
    return;
  }
  const double a = 1.0 / static_cast<double>(valid.size());  // the valid points' weights, normalised
  auto unit = [&](size_t j, size_t i) { return points[j][i] / norm[j]; };
  std::vector<double> u(n, 0.0), step(n);
  for (size_t j : valid)
    for (size_t i = 0; i < n; ++i) u[i] += a * unit(j, i);
  double un = 0;
  for (double x : u) un += x * x;
  un = std::sqrt(un);
  if (un < tol)
    for (size_t i = 0; i < n; ++i) u[i] = unit(valid[0], i);
  else
    for (double& x : u) x /= un;
  for (int it = 0; it < max_iter; ++it) {
    std::fill(step.begin(), step.end(), 0.0);
    for (size_t j : valid) {
      double d = 0;
      for (size_t i = 0; i < n; ++i) d += u[i] * unit(j, i);
      d = std::clamp(d, -1.0, 1.0);
      const double theta = std::acos(d);
      if (theta < tol) continue;
      const double c = a * theta / std::sin(theta);
      for (size_t i = 0; i < n; ++i) step[i] += c * (unit(j, i) - d * u[i]);
    }
    double sn = 0;
    for (double x : step) sn += x * x;
    sn = std::sqrt(sn);
    if (sn < tol) break;
    const double c = std::cos(sn), s = std::sin(sn) / sn;
    double nn = 0;
    for (size_t i = 0; i < n; ++i) {
      u[i] = c * u[i] + s * step[i];
      nn += u[i] * u[i];
    }
    nn = std::sqrt(nn);
    if (nn > tol)
      for (double& x : u) x /= nn;
  }
  double scale = 0;  // every point's norm counts here, zero ones included
  for (size_t j = 0; j < k; ++j) scale += alpha * norm[j];
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(scale * u[i]);
}

}  // namespace deltakit
