// A fused pass as another device (src/gpu) computes it, in a light header nvcc compiles: what
// the CPU's block encoder gathers while it reads δ, from which the codec's *_encoder_from_*
// (dare: src/codec/sparse.h, quant: src/codec/quant.h) stores the same parts and attributes.
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

struct QuantGroups {
  std::vector<uint8_t> codes;                        // packed LSB first, packed_bytes(n, bits)
  std::vector<float> mins, steps;                    // per group
  std::vector<double> piece_err_sq, piece_delta_sq;  // as DareKept's
};

}  // namespace deltakit
