#include "src/merge/slerp.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace deltakit {

void slerp(double t, std::span<const float> v0, std::span<const float> v1, std::span<float> out) {
  constexpr double kDotThreshold = 0.9995, kEps = 1e-8;
  double n0 = 0, n1 = 0, dot = 0;
  for (size_t i = 0; i < v0.size(); ++i) {
    n0 += static_cast<double>(v0[i]) * v0[i];
    n1 += static_cast<double>(v1[i]) * v1[i];
    dot += static_cast<double>(v0[i]) * v1[i];
  }
  n0 = std::sqrt(n0), n1 = std::sqrt(n1);
  const double d = dot / (n0 > kEps ? n0 : 1.0) / (n1 > kEps ? n1 : 1.0);
  double s0 = 1 - t, s1 = t;
  if (std::fabs(d) <= kDotThreshold) {
    const double theta0 = std::acos(d), sin0 = std::sin(theta0);
    s0 = std::sin(theta0 - t * theta0) / sin0;
    s1 = std::sin(t * theta0) / sin0;
  }
  for (size_t i = 0; i < v0.size(); ++i) out[i] = static_cast<float>(s0 * v0[i] + s1 * v1[i]);
}

namespace {
struct Coefficients {
  double s0, s1;
};

// From the squared norms and the dot product of one vector pair.
Coefficients nuslerp_coefficients(double t, double nn0, double nn1, double dot) {
  constexpr double kNormFloor = 1e-7, kColinear = 1e-8;
  const double cos_theta =
      std::clamp(dot / std::max(std::sqrt(nn0), kNormFloor) / std::max(std::sqrt(nn1), kNormFloor), -1.0, 1.0);
  const double theta = std::acos(cos_theta), sin_theta = std::sin(theta);
  if (std::fabs(sin_theta) < kColinear) return {1 - t, t};
  return {std::sin((1 - t) * theta) / sin_theta, std::sin(t * theta) / sin_theta};
}
}  // namespace

void nuslerp(double t, std::span<const float> v0, std::span<const float> v1, uint64_t leading, uint64_t cols,
             NuSlerpVectors how, std::span<float> out) {
  const uint64_t n = v0.size();
  // element e belongs to vector vec(e): rows are contiguous, columns interleave
  uint64_t count = 1;
  if (how == NuSlerpVectors::Rows && cols > 0 && n % cols == 0) count = n / cols;
  if (how == NuSlerpVectors::Columns && leading > 0 && n % leading == 0) count = n / leading;
  const bool columns = how == NuSlerpVectors::Columns;
  const auto vec = [&](uint64_t e) { return count == 1 ? 0 : columns ? e % count : e / cols; };
  std::vector<double> nn0(count, 0.0), nn1(count, 0.0), dot(count, 0.0);
  for (uint64_t e = 0; e < n; ++e) {  // memory order whatever the vectors are
    const uint64_t j = vec(e);
    const double a = v0[e], b = v1[e];
    nn0[j] += a * a, nn1[j] += b * b, dot[j] += a * b;
  }
  std::vector<Coefficients> c(count);
  for (uint64_t j = 0; j < count; ++j) c[j] = nuslerp_coefficients(t, nn0[j], nn1[j], dot[j]);
  for (uint64_t e = 0; e < n; ++e) {
    const Coefficients& k = c[vec(e)];
    out[e] = static_cast<float>(k.s0 * v0[e] + k.s1 * v1[e]);
  }
}

}  // namespace deltakit
