// A stored tensor's δ̂ decoded a range of entries at a time. What the adapter stores (sign bits
// and scales, quant codes, positions and values) stays in its compressed form; decode(first, n)
// expands only δ̂[first, first + n). Apply and merge walk a tensor in cache-sized blocks through
// this, so no tensor-sized fp32 δ̂ exists, and decode_tensor is the same call over the whole
// range: one implementation, the same floats either way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace deltakit {

class RangeDecoder {
 public:
  virtual ~RangeDecoder() = default;
  // out[0, n) = δ̂[first, first + n), overwritten (first + n ≤ the stream's length)
  virtual void decode(uint64_t first, uint64_t n, float* out) const = 0;
};

// δ̂ already expanded (a dense coder's product, a coder without a range form).
class DenseRangeDecoder final : public RangeDecoder {
 public:
  explicit DenseRangeDecoder(std::vector<float> v) : v_(std::move(v)) {}
  void decode(uint64_t first, uint64_t n, float* out) const override {
    std::memcpy(out, v_.data() + first, n * sizeof(float));
  }

 private:
  std::vector<float> v_;
};

// Sorted distinct positions and their values, zero elsewhere (a sparsifier's stream).
class SparseRangeDecoder final : public RangeDecoder {
 public:
  SparseRangeDecoder(std::vector<uint64_t> pos, std::vector<float> vals)
      : pos_(std::move(pos)), vals_(std::move(vals)) {}
  void decode(uint64_t first, uint64_t n, float* out) const override {
    std::fill(out, out + n, 0.0f);
    for (uint64_t j = lower(first); j < pos_.size() && pos_[j] < first + n; ++j) out[pos_[j] - first] = vals_[j];
  }
  // Overwrite the entries of [first, first + n) this stream holds (cherries over their chain).
  void overwrite(uint64_t first, uint64_t n, float* out) const {
    for (uint64_t j = lower(first); j < pos_.size() && pos_[j] < first + n; ++j) out[pos_[j] - first] = vals_[j];
  }

 private:
  uint64_t lower(uint64_t first) const {
    return static_cast<uint64_t>(std::lower_bound(pos_.begin(), pos_.end(), first) - pos_.begin());
  }
  std::vector<uint64_t> pos_;
  std::vector<float> vals_;
};

// A chain's δ̂ with its cherries written over it.
class CherryRangeDecoder final : public RangeDecoder {
 public:
  CherryRangeDecoder(std::unique_ptr<RangeDecoder> chain, SparseRangeDecoder cherries)
      : chain_(std::move(chain)), cherries_(std::move(cherries)) {}
  void decode(uint64_t first, uint64_t n, float* out) const override {
    chain_->decode(first, n, out);
    cherries_.overwrite(first, n, out);
  }

 private:
  std::unique_ptr<RangeDecoder> chain_;
  SparseRangeDecoder cherries_;
};

}  // namespace deltakit
