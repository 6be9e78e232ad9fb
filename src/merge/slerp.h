// Spherical linear interpolation of two tensors as one vector each (mergekit's slerp): with
// u = v0/‖v0‖, w = v1/‖v1‖ (a norm ≤ 1e-8 leaves the vector as is) and d = Σ u·w, the result is
// the lerp (1 − t)·v0 + t·v1 when |d| > 0.9995 (nearly parallel), else
//   θ0 = acos(d), s0 = sin(θ0 − tθ0)/sin θ0, s1 = sin(tθ0)/sin θ0, result = s0·v0 + s1·v1.
// Norms and the dot product are summed in double.
#pragma once

#include <span>

namespace deltakit {

void slerp(double t, std::span<const float> v0, std::span<const float> v1, std::span<float> out);

}  // namespace deltakit
