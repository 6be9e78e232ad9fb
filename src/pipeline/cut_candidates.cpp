#include "src/pipeline/cut_candidates.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <algorithm>
#include <new>

#include "src/codec/score_cut.h"

namespace deltakit {

uint64_t take_at_least(const uint32_t* keys, uint32_t floor, const float* values, const uint64_t* positions,
                       uint64_t first, uint64_t m, uint32_t* out_keys, uint64_t* out_positions, float* out_values) {
  uint64_t k = 0, j = 0;
#ifdef __AVX512F__
  // 16 keys at a time, the kept ones compressed in registers and stored whole (dare.cpp's way):
  // while the floor is low, early in a rank's scores, most entries are kept and a branch per
  // entry mispredicts; later almost none are, and a group with none stores nothing
  const __m512i fl = _mm512_set1_epi32(static_cast<int>(floor));
  const __m512i step = _mm512_set1_epi64(8);
  __m512i at =
      _mm512_add_epi64(_mm512_set1_epi64(static_cast<long long>(first)), _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
  for (; j + 16 <= m; j += 16) {
    const __m512i kv = _mm512_loadu_si512(keys + j);
    const __mmask16 keep = _mm512_cmpge_epu32_mask(kv, fl);
    if (keep) {
      _mm512_storeu_si512(out_keys + k, _mm512_maskz_compress_epi32(keep, kv));
      const __m512 v = values ? _mm512_loadu_ps(values + j) : _mm512_setzero_ps();
      _mm512_storeu_ps(out_values + k, _mm512_maskz_compress_ps(keep, v));
      const __mmask8 lo = static_cast<__mmask8>(keep), hi = static_cast<__mmask8>(keep >> 8);
      const unsigned n_lo = static_cast<unsigned>(__builtin_popcount(lo));
      const __m512i p_lo = positions ? _mm512_loadu_si512(positions + j) : at;
      const __m512i p_hi = positions ? _mm512_loadu_si512(positions + j + 8) : _mm512_add_epi64(at, step);
      _mm512_storeu_si512(out_positions + k, _mm512_maskz_compress_epi64(lo, p_lo));
      _mm512_storeu_si512(out_positions + k + n_lo, _mm512_maskz_compress_epi64(hi, p_hi));
      k += static_cast<unsigned>(__builtin_popcount(keep));
    }
    at = _mm512_add_epi64(at, _mm512_add_epi64(step, step));
  }
#endif
  for (; j < m; ++j) {  // branchless: written always, kept by advancing
    out_keys[k] = keys[j];
    out_positions[k] = positions ? positions[j] : first + j;
    out_values[k] = values ? values[j] : 0.0f;
    k += keys[j] >= floor;
  }
  return k;
}

CandidatePool::CandidatePool(size_t tensors, uint64_t k, uint64_t keep_bytes)
    : lists_(tensors),
      valued_(tensors, 1),
      tensor_from_(tensors, 0),
      high_(kScoreBuckets, 0),
      cap_(std::max<uint64_t>(keep_bytes / KeptChunk::kEntryBytes, 3)),
      target_(std::clamp<uint64_t>(k, 1, cap_ / 3)),
      prune_at_(target_ + target_ / 2) {}

CandidatePool::~CandidatePool() {
  for (KeptEntries& l : lists_) l.clear(store_);
}

void CandidatePool::add(size_t j, uint64_t first, std::span<const float> scores, std::span<const float> values,
                        StagedEntries& staged) {
  stage(j, nullptr, first, scores, values, staged);
}

void CandidatePool::stage(size_t j, const uint64_t* positions, uint64_t first, std::span<const float> scores,
                          std::span<const float> values, StagedEntries& staged) {
  const uint64_t m = scores.size();
  if (m == 0) return;
  if ((positions ? positions[m - 1] : first + m - 1) > UINT32_MAX) {  // positions ascend: the last is the largest
    too_wide_.store(true);
    return;
  }
  if (values.size() != m) valued_[j] = 0;  // only tensor j's thread writes its flag
  if (staged.keys.size() < staged.n + m + 16) {
    const size_t size = staged.n + m + 16;
    staged.keys.resize(size), staged.positions.resize(size), staged.values.resize(size);
  }
  if (staged.block_keys.size() < m) staged.block_keys.resize(m);
  for (uint64_t i = 0; i < m; ++i) staged.block_keys[i] = score_key(scores[i]);  // vectorizes
  staged.n += take_at_least(staged.block_keys.data(), floor_.load(std::memory_order_relaxed),
                            valued_[j] ? values.data() : nullptr, positions, first, m, staged.keys.data() + staged.n,
                            staged.positions.data() + staged.n, staged.values.data() + staged.n);
  if (staged.n >= 4096) hand_over(j, staged);
}

KeptChunk* ChunkStore::take() {
  if (free_.empty()) return new KeptChunk;  // default-initialized: not zeroed
  KeptChunk* c = free_.back();
  free_.pop_back();
  return c;
}

void ChunkStore::trim() {
  for (KeptChunk* c : free_) delete c;
  free_.clear();
}

void KeptEntries::append(const uint32_t* keys, const uint64_t* positions, const float* values, size_t n,
                         ChunkStore& store) {
  constexpr size_t kChunk = KeptChunk::kSize;
  for (size_t i = 0; i < n;) {
    if (n_ % kChunk == 0 && n_ / kChunk == chunks_.size()) chunks_.push_back(store.take());
    KeptChunk& c = *chunks_[n_ / kChunk];
    const size_t s = n_ % kChunk, m = std::min(n - i, kChunk - s);
    std::copy_n(keys + i, m, c.keys + s);
    std::copy_n(positions + i, m, c.positions + s);
    std::copy_n(values + i, m, c.values + s);
    i += m, n_ += m;
  }
}

void KeptEntries::keep_at_least(uint32_t floor, ChunkStore& store) {
  constexpr size_t kChunk = KeptChunk::kSize;
  size_t w = 0;
  for (size_t i = 0; i < n_; ++i) {  // branchless: written always, kept by advancing
    const KeptChunk& from = *chunks_[i / kChunk];
    KeptChunk& to = *chunks_[w / kChunk];
    const size_t r = i % kChunk, s = w % kChunk;
    to.keys[s] = from.keys[r], to.positions[s] = from.positions[r], to.values[s] = from.values[r];
    w += from.keys[r] >= floor;
  }
  n_ = w;
  const size_t used = (w + kChunk - 1) / kChunk;
  for (size_t c = used; c < chunks_.size(); ++c) store.give(chunks_[c]);
  chunks_.resize(used);
}

void KeptEntries::clear(ChunkStore& store) {
  for (KeptChunk* c : chunks_) store.give(c);
  chunks_.clear();
  n_ = 0;
}

void CandidatePool::add_some(size_t j, std::span<const uint64_t> positions, std::span<const float> scores,
                             std::span<const float> values, uint32_t complete_from, StagedEntries& staged) {
  tensor_from_[j] = complete_from;
  stage(j, positions.data(), 0, scores.first(positions.size()), values, staged);
}

void CandidatePool::clear(size_t j) {
  std::lock_guard<std::mutex> lock(mutex_);
  lists_[j].for_each([&](uint32_t key, uint64_t, float) { --high_[key >> 16]; });
  held_ -= lists_[j].size();
  lists_[j].clear(store_);
  tensor_from_[j] = 0;
  valued_[j] = 1;
}

void CandidatePool::release(size_t j) {
  clear(j);
  std::lock_guard<std::mutex> lock(mutex_);
  store_.trim();
}

void CandidatePool::hand_over(size_t j, StagedEntries& staged) {
  const size_t n = staged.n;
  staged.n = 0;
  std::lock_guard<std::mutex> lock(mutex_);
  lists_[j].append(staged.keys.data(), staged.positions.data(), staged.values.data(), n, store_);
  for (size_t i = 0; i < n; ++i) ++high_[staged.keys[i] >> 16];
  held_ += n;
  if (held_ > prune_at_) prune();
}

void CandidatePool::prune() {
  // the floor: the start of the bucket holding the target-th largest key, where that keeps at
  // most 1.125·target; else that key itself (a second histogram, over its bucket), and past it
  // where its ties would leave more than 2/3 of the cap
  const auto [bucket, above_bucket] = find_bucket(high_, target_);
  const uint32_t hb = bucket;  // (a lambda below uses it: clang 14 captures no structured binding)
  uint32_t floor = hb << 16;
  if (above_bucket + high_[hb] > target_ + target_ / 8) {
    std::vector<uint64_t> low(kScoreBuckets, 0);
    for (const KeptEntries& l : lists_)
      l.for_each([&](uint32_t key, uint64_t, float) {
        if ((key >> 16) == hb) ++low[key & 0xffffu];
      });
    const auto [lb, above_value] = find_bucket(low, target_ - above_bucket);
    floor |= lb;
    if (above_bucket + above_value + low[lb] > 2 * cap_ / 3) ++floor;
  }
  floor = std::max(floor, floor_.load());
  // drop what lies below it and count the rest again
  std::fill(high_.begin(), high_.end(), 0);
  held_ = 0;
  for (KeptEntries& l : lists_) {
    l.keep_at_least(floor, store_);
    l.for_each([&](uint32_t key, uint64_t, float) { ++high_[key >> 16]; });
    held_ += l.size();
  }
  floor_.store(floor);
  prune_at_ = held_ + std::max(target_ / 2, held_ / 4);  // ≤ the cap; pruning costs O(held), amortized
}

}  // namespace deltakit
