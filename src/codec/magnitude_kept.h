// The entries of a stream of δ with the largest |δ|, kept as the stream passes: every entry whose
// magnitude is at or above a floor, with its position and value (8 bytes: tensors of < 2^32
// entries). The floor rises to the target-th largest magnitude seen whenever more than 1.5 times
// the target are held, the target growing with what was seen: `fraction` of it (plus 1024), up to
// `want`. So the floor nears the stream's top `fraction` after its first block rather than
// after its end, and later blocks keep few entries. What fell below the floor is known by the
// floor alone: every entry not held has |δ| below it.
//
// A cherry's model-wide cut uses it to score a tensor in its statistics pass (the scores need
// the chain's scale, known only after that pass): where a score is a function of |δ| that rises
// above the scale (BitDelta's (|δ| − α)²), the entries not held score at most the score at the
// floor or at δ = 0, a bound the cut can check (src/codec/cherry_stream.h).
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "src/core/thread_spare.h"

namespace deltakit {

class MagnitudeKept {
 public:
  MagnitudeKept(uint64_t want, double fraction);
  ~MagnitudeKept();  // the buffers back to the thread's spares
  MagnitudeKept(MagnitudeKept&&) = default;
  MagnitudeKept& operator=(MagnitudeKept&&) = default;

  // the next block of the stream, its first entry at `first` (blocks in index order)
  void add(uint64_t first, std::span<const float> delta);
  // every entry not held has a magnitude key (|δ|'s bits) below this; 0: none was dropped
  uint32_t floor() const { return floor_; }
  std::span<const uint32_t> positions() const { return {pos_.data(), n_}; }
  std::span<const float> values() const { return {val_.data(), n_}; }

 private:
  uint64_t target() const;
  void prune();

  uint64_t want_, seen_ = 0;
  double fraction_;
  uint32_t floor_ = 0;
  // positions, values and prune's scratch keys: lent by the thread from stream to stream
  // (src/core/thread_spare.h), grown once for the most the target can hold, so tensor after
  // tensor the same pages serve (a fresh mapping of a few MB faults per 4 KiB: the scoring
  // pass's largest cost on these VMs); growth zero-fills nothing
  SpareVector<uint32_t> pos_, keys_;
  SpareVector<float> val_;
  size_t n_ = 0;
};

// |x|'s bits: the order of magnitudes (NaN above +Inf).
inline uint32_t magnitude_bits(float x) {
  uint32_t k;
  __builtin_memcpy(&k, &x, 4);
  return k & 0x7fffffffu;
}

}  // namespace deltakit
