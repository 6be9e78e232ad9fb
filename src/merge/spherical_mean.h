// Means on the sphere of many tensors, each taken as one vector (algorithms.md §8):
//
// Multi-SLERP (mergekit's multislerp): with weights w (normalised to sum 1 unless told not to),
// unit vectors u_i = v_i/(‖v_i‖ + eps), the weighted mean direction m = Σ w_i u_i / ‖Σ w_i u_i‖,
// the tangent vectors u_i − (u_i·m)·m averaged with the same weights into τ, and the result
// exp_m(τ) = m·cos‖τ‖ + τ·sin‖τ‖/‖τ‖ (‖τ‖ + eps), scaled by Σ w_i ‖v_i‖. With a base the
// vectors are task vectors v_i = θ_i − θ_b and the base is added back. Two vectors whose
// directions cancel fall back to the weighted sum; three or more are an error.
//
// Karcher (mergekit's karcher): the Riemannian mean of the unit directions with equal weights,
// by at most max_iter steps of u ← exp_u(Σ a_i θ_i/sin θ_i · (u_i − cos θ_i·u)), θ_i = acos(u·u_i),
// from the normalised arithmetic mean, stopping when the step's norm is below tol; vectors of
// norm ≤ tol take no part in the direction. The result is u scaled by Σ a_i ‖v_i‖.
//
// Dot products and norms are summed in double; the vectors are fp32.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace deltakit {

// `base` may be empty. Throws Error(InvalidValue) when three or more directions cancel.
void multislerp(std::span<const std::span<float>> models, std::span<const double> weights, std::span<const float> base,
                bool normalize_weights, double eps, std::span<float> out);

void karcher_mean(std::span<const std::span<const float>> points, int max_iter, double tol, std::span<float> out);

}  // namespace deltakit
