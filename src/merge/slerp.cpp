#include "src/merge/slerp.h"

#include <cmath>

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

}  // namespace deltakit
