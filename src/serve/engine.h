// One decoding step over a batch of sequences of different tenants (continuous batching's
// unit of work): each sequence brings the tokens it feeds this step — a chunk of its prompt, or
// the token it sampled last — and its KV cache. Every linear map runs once for the whole batch
// on the base weights (invariant_gemm), then each tenant's rows, grouped into one segment per
// tenant (as SGMV does), get their delta's product from its compressed form.
//
// Batch invariance: every row's arithmetic is its own (per-row norms, fixed-order sums, its own
// cache), so a request's logits are the same bits alone or batched with any others, and for any
// thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "src/serve/served_model.h"

namespace deltakit {

struct Sequence {
  Sequence(const ServedBase& base, std::shared_ptr<const Tenant> tenant, int64_t capacity);
  std::shared_ptr<const Tenant> tenant;  // null: the base model
  int64_t capacity = 0;                  // positions the cache holds
  int64_t pos = 0;                       // positions filled
  std::vector<float> k, v;               // [layers, capacity, kv_dim]
};

struct StepChunk {
  Sequence* seq = nullptr;
  std::vector<int32_t> tokens;  // fed at positions seq->pos, seq->pos + 1, ...
  bool want_logits = false;     // logits of the chunk's last token
  std::vector<float> logits;    // [vocab], filled when wanted
};

class Engine {
 public:
  Engine(const ServedBase& base, unsigned threads) : base_(base), threads_(threads ? threads : 1) {}
  // Runs the chunks (tokens must be in the vocabulary, and fit the caches) and advances each
  // sequence's pos by its chunk's length.
  void step(std::vector<StepChunk>& chunks);
  unsigned threads() const { return threads_; }

 private:
  struct Segment {
    const Tenant* tenant;
    int64_t begin, end;  // rows
  };
  // out[M, N] = in · Wᵀ (+ bias) for the base, then each segment's delta product
  void linear(float* out, const float* in, const float* w, const float* bias, int64_t K, int64_t N,
              std::unique_ptr<DeltaProduct> TenantLayer::*delta, int64_t layer);
  void norm(float* out, const float* in, const float* base_w, std::vector<float> TenantLayer::*delta, int64_t layer,
            int64_t C);

  const ServedBase& base_;
  unsigned threads_;
  std::vector<Segment> segments_;
  int64_t M_ = 0;
  std::vector<float> x_, h_, q_, k_, v_, o_, tmp_, g_, u_, a_, rstd_;
  std::vector<int32_t> tok_, pos_;
  std::vector<Sequence*> seq_;
};

}  // namespace deltakit
