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
#include <memory>
#include <span>
#include <utility>
#include <vector>

namespace deltakit {

class MagnitudeKept {
 public:
  MagnitudeKept(uint64_t want, double fraction) : want_(want < 1 ? 1 : want), fraction_(fraction) {}

  // the next block of the stream, its first entry at `first` (blocks in index order)
  void add(uint64_t first, std::span<const float> delta);
  // every entry not held has a magnitude key (|δ|'s bits) below this; 0: none was dropped
  uint32_t floor() const { return floor_; }
  std::span<const uint32_t> positions() const { return {store_.pos.get(), n_}; }
  std::span<const float> values() const { return {store_.val.get(), n_}; }

  // (public for the thread's spare) Positions, values and prune's scratch keys, sized once for
  // the most the target can hold, never zeroed. A thread keeps the largest it has given back and hands it to the next
  // stream it serves: tensor after tensor, the same pages, not faulted in again (a fresh allocation of a few MB is a
  // fresh mapping: a fault per 4 KiB, the scoring pass's largest cost).
  struct Storage {
    std::unique_ptr<uint32_t[]> pos, keys;
    std::unique_ptr<float[]> val;
    size_t capacity = 0;
    Storage() = default;
    Storage(Storage&& o) noexcept { *this = std::move(o); }
    Storage& operator=(Storage&& o) noexcept {
      pos = std::move(o.pos), keys = std::move(o.keys), val = std::move(o.val);
      capacity = std::exchange(o.capacity, 0);
      return *this;
    }
    ~Storage();                                // to the thread's spare, if larger
    static Storage at_least(size_t capacity);  // the thread's spare if it is large enough
  };

 private:
  uint64_t target() const;
  void prune();

  uint64_t want_, seen_ = 0;
  double fraction_;
  uint32_t floor_ = 0;
  Storage store_;
  size_t n_ = 0;
};

// |x|'s bits: the order of magnitudes (NaN above +Inf).
inline uint32_t magnitude_bits(float x) {
  uint32_t k;
  __builtin_memcpy(&k, &x, 4);
  return k & 0x7fffffffu;
}

}  // namespace deltakit
