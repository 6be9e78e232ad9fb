// ‖δ − δ̂‖² and ‖δ‖², the error a compress reports per tensor, summed in double in a fixed order:
// the stream is cut into pieces of kPiece entries; within a piece, entry i goes to lane i mod 8,
// each lane in increasing i, a multiply then an add (no fused multiply-add); a piece's sum is its
// lanes added lane 0 first, the tensor's the pieces' sums added in order. Whether the sums come
// from a decoded copy (error_norms), from a coder that knows its reconstruction while it encodes
// (ErrorLanes::add on blocks of it), or from a GPU's threads, one per (piece, lane)
// (src/gpu/pair_lanes.h), they are the same bits, with or without AVX-512.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

namespace deltakit {

struct ErrorNorms {
  double err_sq = 0, delta_sq = 0;
  double relative() const {  // ‖δ − δ̂‖ / ‖δ‖ (0 when δ = 0)
    return delta_sq > 0 ? std::sqrt(err_sq / delta_sq) : (err_sq > 0 ? INFINITY : 0.0);
  }
};

class ErrorLanes {
 public:
  static constexpr uint64_t kLanes = 8, kPiece = 16384;
  // Entries [b, e) of the stream against their reconstruction recon[0, e − b). Ranges are added
  // in increasing order.
  void add(std::span<const float> delta, uint64_t b, uint64_t e, const float* recon) {
    add_block(delta.data() + b, b, e, recon);
  }
  // The same with the entries [b, e) at block[0, e − b).
  void add_block(const float* block, uint64_t b, uint64_t e, const float* recon);
  ErrorNorms sums() const {
    ErrorNorms r = total_;
    r.err_sq += lane_sum(num_), r.delta_sq += lane_sum(den_);  // the last piece, whole or not
    return r;
  }
  // Keep every piece's sums as well (err_sq and delta_sq, lanes added), for a tensor split into
  // blocks whose passes are joined (src/codec/split_pass.h): take_pieces() gives them, the last
  // piece whole or not, and from_pieces() of the joined lists is sums().
  void keep_pieces() { keep_ = true; }
  void take_pieces(std::vector<double>& err_sq, std::vector<double>& delta_sq) {
    err_sq = std::move(kept_err_), delta_sq = std::move(kept_den_);
    err_sq.push_back(lane_sum(num_)), delta_sq.push_back(lane_sum(den_));
  }
  // The same sums from every piece's (lanes already added, in order: a device computes them).
  static ErrorNorms from_pieces(std::span<const double> err_sq, std::span<const double> delta_sq) {
    ErrorNorms r;
    for (size_t q = 0; q < err_sq.size(); ++q) r.err_sq += err_sq[q], r.delta_sq += delta_sq[q];
    return r;
  }

 private:
  static double lane_sum(const double* lane) {
    double s = 0;
    for (uint64_t l = 0; l < kLanes; ++l) s += lane[l];
    return s;
  }
  // entries [b, e) of one piece
  void add_in_piece(const float* block, uint64_t b, uint64_t e, const float* recon);
  double num_[kLanes] = {}, den_[kLanes] = {};  // the current piece's lanes
  ErrorNorms total_;                            // the pieces before it
  bool keep_ = false;
  std::vector<double> kept_err_, kept_den_;  // with keep_pieces(): each whole piece's sums
};

inline ErrorNorms error_norms(std::span<const float> delta, std::span<const float> recon) {
  ErrorLanes lanes;
  lanes.add(delta, 0, delta.size(), recon.data());
  return lanes.sums();
}

}  // namespace deltakit
