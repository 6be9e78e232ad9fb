// "Multiply by my delta" beside decode: a stored tensor's δ̂ held in its compressed form (sign
// bits and scales, quant codes, low-rank factors, sparse positions and values, cherries), able
// to add δ̂·x to a batch of activations without ever expanding δ̂ into a dense matrix. Serving
// (src/serve/) keeps one per linear map per tenant and adds its product after the shared base
// GEMM. A codec that has no product form falls back to a DenseProduct of its decoded δ̂.
//
// Every output element is one sum in a fixed order (src/core/fixed_dot.h), computed by one
// thread: a row's result does not depend on the other rows in the batch, on M, or on threads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace deltakit {

class DeltaProduct {
 public:
  DeltaProduct(uint64_t rows, uint64_t cols) : rows_(rows), cols_(cols) {}
  virtual ~DeltaProduct() = default;
  uint64_t rows() const { return rows_; }
  uint64_t cols() const { return cols_; }
  // y[m·rows + r] += Σ_c δ̂[r,c]·x[m·cols + c] for m < M. The default decodes one row at a time
  // (a block of a quantized stream) into a scratch row and dots it with every input.
  virtual void multiply_add(const float* x, int64_t M, float* y, unsigned threads) const;
  // δ̂[r, 0..cols) into out (overwritten): embedding rows, validation, cherry corrections.
  virtual void decode_row(uint64_t r, float* out) const = 0;
  virtual uint64_t bytes() const = 0;    // what this form holds in memory
  virtual std::string form() const = 0;  // "signs", "codes", "factors", "sparse", "dense", ...

 protected:
  uint64_t rows_, cols_;
};

// δ̂ as an fp32 matrix: raw deltas, and codecs without a product form.
std::unique_ptr<DeltaProduct> dense_product(uint64_t rows, uint64_t cols, std::vector<float> delta);
// Sorted distinct positions (row-major indices) and their values: a sparsifier's output.
std::unique_ptr<DeltaProduct> sparse_product(uint64_t rows, uint64_t cols, std::span<const uint64_t> positions,
                                             std::span<const float> values, std::string form = "sparse");
// chain + a sparse correction whose entries replace the chain's value at their positions
// (cherries): the correction stores cherry − chain there, so the product is a sum of two.
std::unique_ptr<DeltaProduct> corrected_product(std::unique_ptr<DeltaProduct> chain,
                                                std::span<const uint64_t> positions, std::span<const float> values);

}  // namespace deltakit
