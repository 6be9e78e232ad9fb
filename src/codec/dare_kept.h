// DARE's fused pass as another device (src/gpu) computes it, in a light header nvcc compiles:
// what the CPU's DARE block encoder gathers while it reads δ, from which dare_encoder_from_kept
// (src/codec/sparse.h) stores the same parts and attributes.
#pragma once

#include <cstdint>
#include <vector>

namespace deltakit {

struct DareKept {
  std::vector<uint64_t> positions;  // the kept entries, increasing
  std::vector<uint8_t> values;      // their rescaled values as stored (the tensor's float type)
  // per piece of the error's fixed order (src/codec/error_norms.h): Σ(δ − δ̂)² and Σδ², each its
  // lanes added lane 0 first
  std::vector<double> piece_err_sq, piece_delta_sq;
};

}  // namespace deltakit
