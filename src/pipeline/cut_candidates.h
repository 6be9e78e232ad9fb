// The first pass of the model-wide cut (src/pipeline/global_cut.h) where it can be the only one:
// of the scores a rank sees, every entry at or above a floor, with its key, position and value.
// The floor rises as entries come in, to about the rank's `target`-th largest key seen so far
// (target = k, or a third of what keep_bytes holds at KeptChunk::kEntryBytes an entry): entries below it
// cannot be in the rank's top target, so they are dropped, and the pool holds at most keep_bytes
// (the ties of that key too, where they fit in 2/3 of it).
// Whatever the cut, if it lies at or above every rank's floor, every entry it keeps is here.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

namespace deltakit {

// Kept entries are held in chunks of 4096 (12 bytes an entry: positions in 32 bits, the pool
// refusing a tensor of more entries), so that growing never copies them and what the floor
// drops is given back a chunk at a time.
struct KeptChunk {
  static constexpr size_t kSize = 4096, kEntryBytes = 12;
  uint32_t keys[kSize];
  uint32_t positions[kSize];
  float values[kSize];
};

// Where chunks come from: the heap, never zeroed, and the chunks given back reused, so a pool
// that fills, prunes and fills again touches its memory once. What `trim` frees goes back to
// the heap (which this program keeps: core/allocator.h), where the selections built from the
// pool and the encoders after them find it without faulting fresh pages in.
class ChunkStore {
 public:
  ChunkStore() = default;
  ChunkStore(const ChunkStore&) = delete;
  ChunkStore& operator=(const ChunkStore&) = delete;
  ~ChunkStore() { trim(); }
  KeptChunk* take();
  void give(KeptChunk* c) { free_.push_back(c); }
  void trim();  // frees the chunks given back

 private:
  std::vector<KeptChunk*> free_;
};

// Entries of one tensor in index order: their score keys (score_cut.h), positions and values.
class KeptEntries {
 public:
  size_t size() const { return n_; }
  void append(const uint32_t* keys, const uint64_t* positions, const float* values, size_t n, ChunkStore& store);
  // Drops the entries whose key is below `floor`, the others keeping their order.
  void keep_at_least(uint32_t floor, ChunkStore& store);
  // Drops every entry.
  void clear(ChunkStore& store);
  // fn(key, position, value) over the entries in order
  template <class Fn>
  void for_each(Fn fn) const {
    for (size_t i = 0; i < n_; ++i) {
      const KeptChunk& c = *chunks_[i / KeptChunk::kSize];
      const size_t s = i % KeptChunk::kSize;
      fn(c.keys[s], c.positions[s], c.values[s]);
    }
  }

 private:
  std::vector<KeptChunk*> chunks_;  // the store's
  size_t n_ = 0;
};

// A thread's entries of one block at a time waiting to be handed over (sized once, reused).
struct StagedEntries {
  std::vector<uint32_t> keys, block_keys;
  std::vector<uint64_t> positions;
  std::vector<float> values;
  size_t n = 0;
};

class CandidatePool {
 public:
  CandidatePool(size_t tensors, uint64_t k, uint64_t keep_bytes);
  ~CandidatePool();  // the lists' chunks freed

  // Tensor j's next block (its first entry at `first`): the entries at or above the floor into
  // `staged`, handed over when it fills. A tensor is scored by one thread, tensors side by side.
  // `values` empty: the source gives none, so no selection can come from this tensor.
  void add(size_t j, uint64_t first, std::span<const float> scores, std::span<const float> values,
           StagedEntries& staged);
  // Or some of tensor j's entries only (positions ascending, over calls too), every other one's
  // key below `complete_from` (global_cut.h's SomeScoresVisit).
  void add_some(size_t j, std::span<const uint64_t> positions, std::span<const float> scores,
                std::span<const float> values, uint32_t complete_from, StagedEntries& staged);
  void hand_over(size_t j, StagedEntries& staged);
  // Forget tensor j's entries (before it is scored again, whole).
  void clear(size_t j);
  // Forget tensor j's entries and free their memory (once its selection is taken).
  void release(size_t j);
  // At and above this key, every entry of tensor j scored is held.
  uint32_t complete_from(size_t j) const { return std::max(floor(), tensor_from_[j]); }
  // A tensor had entries past 2^32 (not held): the pool cannot give the cut.
  bool too_wide() const { return too_wide_.load(); }

  uint32_t floor() const { return floor_.load(); }
  // the held entries' keys by their high 16 bits (kScoreBuckets counts)
  const std::vector<uint64_t>& high_counts() const { return high_; }
  const KeptEntries& entries(size_t j) const { return lists_[j]; }
  bool valued(size_t j) const { return valued_[j] != 0; }

 private:
  // add's and add_some's work: the block's keys, the entries at or above the floor staged
  // (positions from `positions`, or first + index where null)
  void stage(size_t j, const uint64_t* positions, uint64_t first, std::span<const float> scores,
             std::span<const float> values, StagedEntries& staged);
  void prune();

  ChunkStore store_;  // before lists_: their chunks go back to it
  std::vector<KeptEntries> lists_;
  std::vector<uint8_t> valued_;        // per tensor: every block came with its values
  std::vector<uint32_t> tensor_from_;  // per tensor given by some entries: their complete_from
  std::vector<uint64_t> high_;
  uint64_t cap_, target_, prune_at_, held_ = 0;  // entries
  std::atomic<uint32_t> floor_{0};
  std::atomic<bool> too_wide_{false};
  std::mutex mutex_;
};

// The entries of keys[0, m) at or above `floor`, appended at out_*[0..) in order (positions from
// `positions`, or first + index where null; values from `values`, or 0 where null); returns how
// many. out_* hold m + 16.
uint64_t take_at_least(const uint32_t* keys, uint32_t floor, const float* values, const uint64_t* positions,
                       uint64_t first, uint64_t m, uint32_t* out_keys, uint64_t* out_positions, float* out_values);

}  // namespace deltakit
