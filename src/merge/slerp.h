// Spherical linear interpolation of two tensors as one vector each (mergekit's slerp): with
// u = v0/‖v0‖, w = v1/‖v1‖ (a norm ≤ 1e-8 leaves the vector as is) and d = Σ u·w, the result is
// the lerp (1 − t)·v0 + t·v1 when |d| > 0.9995 (nearly parallel), else
//   θ0 = acos(d), s0 = sin(θ0 − tθ0)/sin θ0, s1 = sin(tθ0)/sin θ0, result = s0·v0 + s1·v1.
// Norms and the dot product are summed in double.
//
// NuSLERP (mergekit's nuslerp) interpolates vectors that are the whole tensor (flatten, the
// default), each row (the last dimension) or each column (row_wise: the first dimension). Per
// vector: u = v/max(‖v‖, 1e-7), θ = acos(clamp(Σ u0·u1, −1, 1)); the lerp (1 − t)·v0 + t·v1 when
// |sin θ| < 1e-8, else (sin((1 − t)θ)·v0 + sin(tθ)·v1)/sin θ. There is no 0.9995 cut-off here.
#pragma once

#include <cstdint>
#include <span>

namespace deltakit {

void slerp(double t, std::span<const float> v0, std::span<const float> v1, std::span<float> out);

enum class NuSlerpVectors { Flatten, Rows, Columns };

// `leading`: the tensor's first dimension, `cols`: its last (a 1-D tensor is one vector either way).
void nuslerp(double t, std::span<const float> v0, std::span<const float> v1, uint64_t leading, uint64_t cols,
             NuSlerpVectors how, std::span<float> out);

}  // namespace deltakit
