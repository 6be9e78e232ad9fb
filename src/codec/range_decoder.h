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

#include "src/core/dtype.h"
#include "src/core/tensor_view.h"

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

// Sorted distinct positions and their values, zero elsewhere (a sparsifier's stream). Held small:
// positions in 32 bits where the tensor has at most 2^32 entries, and values either decoded (a
// value coder's output) or in their stored BF16/F16/F32 bytes, expanded a range at a time. A
// DARE-coded 131072 x 2048 embedding held 64-bit positions and fp32 values: 409 MB at apply.
class SparseRangeDecoder final : public RangeDecoder {
 public:
  SparseRangeDecoder(std::vector<uint64_t> pos, std::vector<float> vals) : vals_(std::move(vals)) {
    if (!pos.empty() && pos.back() > UINT32_MAX) {
      p64_ = std::move(pos);
      return;
    }
    p32_.assign(pos.begin(), pos.end());
  }
  SparseRangeDecoder(std::vector<uint32_t> pos, std::vector<uint8_t> stored, DType dtype)
      : p32_(std::move(pos)), stored_(std::move(stored)), dtype_(dtype) {}
  SparseRangeDecoder(std::vector<uint64_t> pos, std::vector<uint8_t> stored, DType dtype)
      : p64_(std::move(pos)), stored_(std::move(stored)), dtype_(dtype) {}

  void decode(uint64_t first, uint64_t n, float* out) const override {
    std::fill(out, out + n, 0.0f);
    overwrite(first, n, out);
  }
  // Overwrite the entries of [first, first + n) this stream holds (cherries over their chain).
  void overwrite(uint64_t first, uint64_t n, float* out) const {
    const uint64_t lo = lower(first), hi = lower(first + n);
    if (lo == hi) return;
    const float* v = vals_.data() + lo;
    std::vector<float> expanded;
    if (!stored_.empty()) {
      expanded.resize(hi - lo);
      decode_to_f32(dtype_, stored_, lo, expanded);
      v = expanded.data();
    }
    if (p64_.empty())
      for (uint64_t j = lo; j < hi; ++j) out[p32_[j] - first] = v[j - lo];
    else
      for (uint64_t j = lo; j < hi; ++j) out[p64_[j] - first] = v[j - lo];
  }

 private:
  uint64_t lower(uint64_t first) const {
    if (!p64_.empty()) return static_cast<uint64_t>(std::lower_bound(p64_.begin(), p64_.end(), first) - p64_.begin());
    if (first > UINT32_MAX) return p32_.size();
    return static_cast<uint64_t>(std::lower_bound(p32_.begin(), p32_.end(), static_cast<uint32_t>(first)) -
                                 p32_.begin());
  }
  std::vector<uint32_t> p32_;
  std::vector<uint64_t> p64_;  // a tensor past 2^32 entries
  std::vector<float> vals_;
  std::vector<uint8_t> stored_;  // or the values as stored, in dtype_
  DType dtype_ = DType::F32;
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
