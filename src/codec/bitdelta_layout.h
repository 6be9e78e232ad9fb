// One-level BitDelta's statistics laid out as partial sums in a fixed order (a light header: the
// CUDA backend, src/gpu, compiles it with nvcc).
#pragma once

#include <cstdint>
#include <vector>

namespace deltakit {

// One level's statistics as partial sums in a fixed order, so that another device (src/gpu) can
// compute them and get the same bytes: a unit's Σ|δ| is the sum, in double and in order, of its
// runs' float sums — a run is kAbsRun values from the unit's start (the last cut at its end), its
// sum kAbsLanes float lanes (lane l adds the run's values l, l + 16, … in order) added lane 0
// first; a unit's Σδ² likewise of its pieces' double sums (kSqPiece values, kSqLanes lanes, each
// value squared in double).
struct BitDeltaLayout {
  static constexpr uint64_t kAbsRun = 4096, kAbsLanes = 16, kSqPiece = 16384, kSqLanes = 8;
  uint64_t n = 0;
  std::vector<uint64_t> units;   // unit starts, then n
  std::vector<uint64_t> runs;    // run starts, then n
  std::vector<uint64_t> pieces;  // piece starts, then n
};
struct BitDeltaSums {
  std::vector<float> run_abs;    // per run
  std::vector<double> piece_sq;  // per piece
  std::vector<uint8_t> signs;    // the packed sign bits, packed_bytes(n, 1)
};
}  // namespace deltakit
