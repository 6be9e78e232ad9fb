#include "src/codec/delta_product.h"

#include <omp.h>

#include <algorithm>

#include "src/core/fixed_dot.h"

namespace deltakit {

namespace {
// Rows per task: enough work to amortise a task, small enough to spread over the cores. The
// split never changes a result (each output element is one thread's fixed-order sum).
constexpr int64_t kRowsPerTask = 16;

bool worth_threads(uint64_t rows, uint64_t cols, int64_t M) {
  return rows * cols * static_cast<uint64_t>(M) > (1u << 21);
}
}  // namespace

void DeltaProduct::multiply_add(const float* x, int64_t M, float* y, unsigned threads) const {
  const int64_t R = static_cast<int64_t>(rows_), K = static_cast<int64_t>(cols_);
  const int64_t tasks = (R + kRowsPerTask - 1) / kRowsPerTask;
#pragma omp parallel num_threads(std::max(1u, threads)) if (threads > 1 && worth_threads(rows_, cols_, M))
  {
    std::vector<float> row(cols_);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t)
      for (int64_t r = t * kRowsPerTask; r < std::min(R, (t + 1) * kRowsPerTask); ++r) {
        decode_row(static_cast<uint64_t>(r), row.data());
        for (int64_t m = 0; m < M; ++m) y[m * R + r] += fixed_dot(row.data(), x + m * K, K);
      }
  }
}

namespace {

class DenseProduct final : public DeltaProduct {
 public:
  DenseProduct(uint64_t rows, uint64_t cols, std::vector<float> d) : DeltaProduct(rows, cols), d_(std::move(d)) {}
  void multiply_add(const float* x, int64_t M, float* y, unsigned threads) const override {
    const int64_t R = static_cast<int64_t>(rows_), K = static_cast<int64_t>(cols_);
#pragma omp parallel for schedule(static) \
    num_threads(std::max(1u, threads)) if (threads > 1 && worth_threads(rows_, cols_, M))
    for (int64_t r = 0; r < R; ++r)
      for (int64_t m = 0; m < M; ++m) y[m * R + r] += fixed_dot(d_.data() + r * K, x + m * K, K);
  }
  void decode_row(uint64_t r, float* out) const override { std::copy_n(d_.data() + r * cols_, cols_, out); }
  uint64_t bytes() const override { return d_.size() * sizeof(float); }
  std::string form() const override { return "dense"; }

 private:
  std::vector<float> d_;
};

// Compressed sparse rows: row r's entries are [start[r], start[r+1]); columns as 16-bit numbers
// where the row is at most 65536 wide (every linear layer of today's models), else 32-bit.
template <class Col>
class SparseProduct final : public DeltaProduct {
 public:
  SparseProduct(uint64_t rows, uint64_t cols, std::span<const uint64_t> pos, std::span<const float> vals,
                std::string form)
      : DeltaProduct(rows, cols),
        start_(rows + 1, 0),
        col_(pos.size()),
        val_(vals.begin(), vals.end()),
        form_(std::move(form)) {
    for (size_t j = 0; j < pos.size(); ++j) {
      ++start_[pos[j] / cols + 1];
      col_[j] = static_cast<Col>(pos[j] % cols);
    }
    for (uint64_t r = 0; r < rows; ++r) start_[r + 1] += start_[r];
  }
  void multiply_add(const float* x, int64_t M, float* y, unsigned threads) const override {
    const int64_t R = static_cast<int64_t>(rows_), K = static_cast<int64_t>(cols_);
#pragma omp parallel for schedule(static) \
    num_threads(std::max(1u, threads)) if (threads > 1 && worth_threads(val_.size(), 1, M))
    for (int64_t r = 0; r < R; ++r) {
      const uint64_t b = start_[r], e = start_[r + 1];
      if (b == e) continue;
      for (int64_t m = 0; m < M; ++m) {
        const float* xm = x + m * K;
        float s = 0;
        for (uint64_t j = b; j < e; ++j) s += val_[j] * xm[col_[j]];
        y[m * R + r] += s;
      }
    }
  }
  void decode_row(uint64_t r, float* out) const override {
    std::fill_n(out, cols_, 0.0f);
    for (uint64_t j = start_[r]; j < start_[r + 1]; ++j) out[col_[j]] = val_[j];
  }
  uint64_t bytes() const override { return start_.size() * 8 + col_.size() * sizeof(Col) + val_.size() * 4; }
  std::string form() const override { return form_; }

 private:
  std::vector<uint64_t> start_;
  std::vector<Col> col_;
  std::vector<float> val_;
  std::string form_;
};

class CorrectedProduct final : public DeltaProduct {
 public:
  CorrectedProduct(std::unique_ptr<DeltaProduct> chain, std::unique_ptr<DeltaProduct> fix)
      : DeltaProduct(chain->rows(), chain->cols()), chain_(std::move(chain)), fix_(std::move(fix)) {}
  void multiply_add(const float* x, int64_t M, float* y, unsigned threads) const override {
    chain_->multiply_add(x, M, y, threads);
    fix_->multiply_add(x, M, y, threads);
  }
  void decode_row(uint64_t r, float* out) const override {
    chain_->decode_row(r, out);
    std::vector<float> f(cols_);
    fix_->decode_row(r, f.data());
    for (uint64_t c = 0; c < cols_; ++c) out[c] += f[c];
  }
  uint64_t bytes() const override { return chain_->bytes() + fix_->bytes(); }
  std::string form() const override { return chain_->form() + "+cherries"; }

 private:
  std::unique_ptr<DeltaProduct> chain_, fix_;
};

}  // namespace

std::unique_ptr<DeltaProduct> dense_product(uint64_t rows, uint64_t cols, std::vector<float> delta) {
  return std::make_unique<DenseProduct>(rows, cols, std::move(delta));
}

std::unique_ptr<DeltaProduct> sparse_product(uint64_t rows, uint64_t cols, std::span<const uint64_t> positions,
                                             std::span<const float> values, std::string form) {
  if (cols <= 65536) return std::make_unique<SparseProduct<uint16_t>>(rows, cols, positions, values, std::move(form));
  return std::make_unique<SparseProduct<uint32_t>>(rows, cols, positions, values, std::move(form));
}

std::unique_ptr<DeltaProduct> corrected_product(std::unique_ptr<DeltaProduct> chain,
                                                std::span<const uint64_t> positions, std::span<const float> values) {
  if (positions.empty()) return chain;
  std::vector<float> fix(values.size()), row(chain->cols());
  uint64_t have = UINT64_MAX;
  for (size_t j = 0; j < positions.size(); ++j) {
    const uint64_t r = positions[j] / chain->cols();
    if (r != have) chain->decode_row(r, row.data()), have = r;
    fix[j] = values[j] - row[positions[j] % chain->cols()];
  }
  auto sparse = sparse_product(chain->rows(), chain->cols(), positions, fix, "cherries");
  return std::make_unique<CorrectedProduct>(std::move(chain), std::move(sparse));
}

}  // namespace deltakit
