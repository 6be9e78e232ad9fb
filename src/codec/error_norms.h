// ‖δ − δ̂‖² and ‖δ‖², the error a compress reports per tensor, summed in double over 8 lanes:
// entry i goes to lane i mod 8, each lane in increasing i, a multiply then an add (no fused
// multiply-add). The order is fixed, so whether the sums come from a decoded copy (error_norms)
// or from a coder that knows its reconstruction while it encodes (ErrorLanes::add on blocks of
// it), they are the same bits, with or without AVX-512.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

namespace deltakit {

struct ErrorNorms {
  double err_sq = 0, delta_sq = 0;
  double relative() const {  // ‖δ − δ̂‖ / ‖δ‖ (0 when δ = 0)
    return delta_sq > 0 ? std::sqrt(err_sq / delta_sq) : (err_sq > 0 ? INFINITY : 0.0);
  }
};

class ErrorLanes {
 public:
  static constexpr uint64_t kLanes = 8;
  // Entries [b, e) of the stream against their reconstruction recon[0, e − b). Ranges are added
  // in increasing order.
  void add(std::span<const float> delta, uint64_t b, uint64_t e, const float* recon) {
    add_block(delta.data() + b, b, e, recon);
  }
  // The same with the entries [b, e) at block[0, e − b).
  void add_block(const float* block, uint64_t b, uint64_t e, const float* recon);
  ErrorNorms sums() const {
    ErrorNorms r;
    for (uint64_t l = 0; l < kLanes; ++l) r.err_sq += num_[l], r.delta_sq += den_[l];
    return r;
  }

 private:
  double num_[kLanes] = {}, den_[kLanes] = {};
};

inline ErrorNorms error_norms(std::span<const float> delta, std::span<const float> recon) {
  ErrorLanes lanes;
  lanes.add(delta, 0, delta.size(), recon.data());
  return lanes.sums();
}

}  // namespace deltakit
