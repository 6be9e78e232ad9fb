#include "src/codec/lowrank.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "src/codec/lapack.h"
#include "src/codec/stage.h"
#include "src/core/error.h"
#include "src/core/fixed_dot.h"
#include "src/core/philox.h"

namespace deltakit {

namespace {

int as_int(uint64_t v) {
  if (v > 0x7fffffffull) throw Error(ErrorCode::Usage, "", "matrix dimension too large for LAPACK");
  return static_cast<int>(v);
}

// C (m×n) = op(A) op(B), all column-major.
void gemm(char ta, char tb, uint64_t m, uint64_t n, uint64_t k, const float* a, uint64_t lda, const float* b,
          uint64_t ldb, float* c, uint64_t ldc) {
  const int M = as_int(m), N = as_int(n), K = as_int(k), LA = as_int(lda), LB = as_int(ldb), LC = as_int(ldc);
  const float one = 1.0f, zero = 0.0f;
  sgemm_(&ta, &tb, &M, &N, &K, &one, a, &LA, b, &LB, &zero, c, &LC, 1, 1);
}

struct Svd {
  std::vector<float> u, s, vt;  // u: m×k, vt: k×n, column-major, k = min(m, n)
};

// Thin SVD of a column-major m×n matrix (destroyed).
Svd svd(std::vector<float>& a, uint64_t m, uint64_t n) {
  const int M = as_int(m), N = as_int(n), K = std::min(M, N);
  Svd r;
  r.u.resize(m * K), r.s.resize(K), r.vt.resize(static_cast<uint64_t>(K) * n);
  std::vector<int> iwork(8 * static_cast<size_t>(K));
  int info = 0, lwork = -1;
  float query = 0;
  const char jobz = 'S';
  sgesdd_(&jobz, &M, &N, a.data(), &M, r.s.data(), r.u.data(), &M, r.vt.data(), &K, &query, &lwork, iwork.data(), &info,
          1);
  lwork = static_cast<int>(query) + 1;
  std::vector<float> work(lwork);
  sgesdd_(&jobz, &M, &N, a.data(), &M, r.s.data(), r.u.data(), &M, r.vt.data(), &K, work.data(), &lwork, iwork.data(),
          &info, 1);
  if (info != 0)
    throw Error(ErrorCode::Usage, "", "LAPACK sgesdd did not converge (info " + std::to_string(info) + ")");
  return r;
}

// Orthonormalize the columns of a column-major m×k matrix in place (Householder QR).
void orthonormalize(std::vector<float>& y, uint64_t m, uint64_t k) {
  const int M = as_int(m), K = as_int(k);
  std::vector<float> tau(k);
  int info = 0, lwork = -1;
  float query = 0;
  sgeqrf_(&M, &K, y.data(), &M, tau.data(), &query, &lwork, &info);
  lwork = static_cast<int>(query) + 1;
  std::vector<float> work(lwork);
  sgeqrf_(&M, &K, y.data(), &M, tau.data(), work.data(), &lwork, &info);
  lwork = -1;
  sorgqr_(&M, &K, &K, y.data(), &M, tau.data(), &query, &lwork, &info);
  lwork = static_cast<int>(query) + 1;
  work.resize(lwork);
  sorgqr_(&M, &K, &K, y.data(), &M, tau.data(), work.data(), &lwork, &info);
  if (info != 0) throw Error(ErrorCode::Usage, "", "LAPACK QR failed (info " + std::to_string(info) + ")");
}

std::vector<float> to_column_major(std::span<const float> a, uint64_t m, uint64_t n) {
  std::vector<float> c(m * n);
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t j = 0; j < n; ++j) c[i + j * m] = a[i * n + j];
  return c;
}

// Randomized thin SVD of rank k of a column-major m×n matrix (kept intact).
Svd randomized_svd(const std::vector<float>& a, uint64_t m, uint64_t n, uint64_t k, uint64_t seed,
                   std::string_view name) {
  // Gaussian test matrix from the counter RNG (Box-Muller), so the sketch is reproducible.
  const TensorRng rng(seed ^ 0x5eed10a7c0de5eedull, name);
  std::vector<uint32_t> words(2 * n * k);
  rng.words(0, words.size(), words.data());
  std::vector<float> omega(n * k);
  for (uint64_t i = 0; i < n * k; ++i) {
    double u1 = (words[2 * i] + 1.0) * 0x1p-32, u2 = words[2 * i + 1] * 0x1p-32;
    omega[i] = static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2));
  }
  std::vector<float> y(m * k), z(n * k);
  gemm('N', 'N', m, k, n, a.data(), m, omega.data(), n, y.data(), m);
  for (int it = 0; it < 2; ++it) {
    orthonormalize(y, m, k);
    gemm('T', 'N', n, k, m, a.data(), m, y.data(), m, z.data(), n);
    orthonormalize(z, n, k);
    gemm('N', 'N', m, k, n, a.data(), m, z.data(), n, y.data(), m);
  }
  orthonormalize(y, m, k);
  std::vector<float> b(k * n);  // Qᵀ A
  gemm('T', 'N', k, n, m, y.data(), m, a.data(), m, b.data(), k);
  Svd small = svd(b, k, n);
  Svd r;
  r.s = std::move(small.s);
  r.vt = std::move(small.vt);
  r.u.resize(m * k);
  gemm('N', 'N', m, k, k, y.data(), m, small.u.data(), k, r.u.data(), m);
  return r;
}

uint64_t rank_for_energy(const std::vector<float>& s, double energy, double total) {
  double acc = 0;
  for (uint64_t i = 0; i < s.size(); ++i) {
    acc += static_cast<double>(s[i]) * s[i];
    if (acc >= energy * total * (1 - 1e-6)) return i + 1;
  }
  return s.size();
}

}  // namespace

std::vector<float> singular_values(std::span<const float> a, uint64_t rows, uint64_t cols) {
  auto c = to_column_major(a, rows, cols);
  return svd(c, rows, cols).s;
}

LowrankFactors lowrank_factorize(const LowrankParams& prm, std::string_view name, std::span<const float> delta,
                                 uint64_t m, uint64_t n) {
  const uint64_t kmax = std::min(m, n);
  auto a = to_column_major(delta, m, n);
  double total = 0;
  for (float x : delta) total += static_cast<double>(x) * x;
  Svd f;
  uint64_t r = 0;
  if (kmax <= prm.full_svd_max_dim) {
    f = svd(a, m, n);  // a is not needed afterwards
    r = prm.rank ? std::min(prm.rank, kmax) : rank_for_energy(f.s, prm.energy, total);
  } else if (prm.rank) {
    r = std::min(prm.rank, kmax);
    f = randomized_svd(a, m, n, std::min(kmax, r + 10), prm.seed, name);
  } else {
    // energy target: grow the sketch until it captures the share of ‖δ‖², else go exact
    for (uint64_t k = 64;; k *= 2) {
      if (k >= kmax / 2) {
        f = svd(a, m, n);
        break;
      }
      f = randomized_svd(a, m, n, k, prm.seed, name);
      double got = 0;
      for (float s : f.s) got += static_cast<double>(s) * s;
      if (got >= prm.energy * total) break;
    }
    r = rank_for_energy(f.s, prm.energy, total);
  }
  if (total == 0) r = 0;
  const uint64_t k = f.s.size();
  LowrankFactors out;
  out.r = r;
  out.us.resize(m * r);
  out.v.resize(n * r);
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t j = 0; j < r; ++j) out.us[i * r + j] = f.u[i + j * m] * f.s[j];
  for (uint64_t c = 0; c < n; ++c)
    for (uint64_t j = 0; j < r; ++j) out.v[c * r + j] = f.vt[j + c * k];
  double kept = 0;
  for (uint64_t j = 0; j < r; ++j) kept += static_cast<double>(f.s[j]) * f.s[j];
  out.energy_kept = total > 0 ? std::min(1.0, kept / total) : 1.0;
  out.randomized = kmax > prm.full_svd_max_dim;
  return out;
}

void lowrank_encode(const LowrankParams& prm, std::string_view name, std::span<const float> delta, uint64_t m,
                    uint64_t n, const ValueType& vt, Encoded& out) {
  const LowrankFactors f = lowrank_factorize(prm, name, delta, m, n);
  out.attrs["lowrank.rank"] = f.r;
  out.attrs["lowrank.energy_kept"] = f.energy_kept;
  out.attrs["lowrank.method"] = f.randomized ? "randomized" : "svd";
  out.add({"lowrank.us", vt.kind, {m, f.r}, store_values(vt, f.us), vt.encoding});
  out.add({"lowrank.v", vt.kind, {n, f.r}, store_values(vt, f.v), vt.encoding});
}

namespace {
LowrankFactors load_lowrank(const AttrReader& a, const PartSource& src, uint64_t m, uint64_t n, const ValueType& vt) {
  LowrankFactors f;
  f.r = a.u64("lowrank.rank", std::min(m, n));
  if (f.r == 0) return f;
  f.us = load_values(vt, src.read("lowrank.us", vt.kind, {m, f.r}, vt.encoding));
  f.v = load_values(vt, src.read("lowrank.v", vt.kind, {n, f.r}, vt.encoding));
  for (float x : f.us)
    if (!std::isfinite(x)) a.fail("lowrank.us holds a non-finite value");
  for (float x : f.v)
    if (!std::isfinite(x)) a.fail("lowrank.v holds a non-finite value");
  return f;
}

// Serving: δ̂·x = US·(Vᵀ·x), two thin products of r per input instead of rows·cols.
class LowrankProduct final : public DeltaProduct {
 public:
  LowrankProduct(uint64_t rows, uint64_t cols, LowrankFactors f)
      : DeltaProduct(rows, cols), r_(f.r), us_(std::move(f.us)) {
    vt_.resize(r_ * cols);  // Vᵀ, so that each of its rows is contiguous
    for (uint64_t c = 0; c < cols; ++c)
      for (uint64_t j = 0; j < r_; ++j) vt_[j * cols + c] = f.v[c * r_ + j];
  }
  void multiply_add(const float* x, int64_t M, float* y, unsigned threads) const override {
    if (r_ == 0) return;
    const int64_t R = static_cast<int64_t>(rows_), K = static_cast<int64_t>(cols_), r = static_cast<int64_t>(r_);
    std::vector<float> t(static_cast<size_t>(M * r));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t j = 0; j < r; ++j) t[m * r + j] = fixed_dot(vt_.data() + j * K, x + m * K, K);
#pragma omp parallel for schedule(static) \
    num_threads(std::max(1u, threads)) if (threads > 1 && R * r * M > (int64_t{1} << 20))
    for (int64_t i = 0; i < R; ++i)
      for (int64_t m = 0; m < M; ++m) y[m * R + i] += fixed_dot(us_.data() + i * r, t.data() + m * r, r);
  }
  void decode_row(uint64_t i, float* out) const override {
    for (uint64_t c = 0; c < cols_; ++c) {
      float s = 0;
      for (uint64_t j = 0; j < r_; ++j) s += us_[i * r_ + j] * vt_[j * cols_ + c];
      out[c] = s;
    }
  }
  uint64_t bytes() const override { return (us_.size() + vt_.size()) * sizeof(float); }
  std::string form() const override { return "factors"; }

 private:
  uint64_t r_;
  std::vector<float> us_, vt_;
};
}  // namespace

std::vector<float> lowrank_decode(const AttrReader& a, const PartSource& src, uint64_t m, uint64_t n,
                                  const ValueType& vt) {
  return lowrank_dense(load_lowrank(a, src, m, n, vt), m, n);
}

std::vector<float> lowrank_dense(const LowrankFactors& f, uint64_t m, uint64_t n) {
  std::vector<float> out(m * n, 0.0f);
  if (f.r == 0) return out;
  // out (row-major m×n) is column-major n×m = V · USᵀ; row-major V is column-major Vᵀ (r×n)
  gemm('T', 'N', n, m, f.r, f.v.data(), f.r, f.us.data(), f.r, out.data(), n);
  return out;
}

std::unique_ptr<DeltaProduct> lowrank_product(const AttrReader& a, const PartSource& src, uint64_t rows, uint64_t cols,
                                              const ValueType& vt) {
  return std::make_unique<LowrankProduct>(rows, cols, load_lowrank(a, src, rows, cols, vt));
}

std::unique_ptr<DeltaProduct> lowrank_product(uint64_t rows, uint64_t cols, LowrankFactors f) {
  return std::make_unique<LowrankProduct>(rows, cols, std::move(f));
}

}  // namespace deltakit

// --- the stage ------------------------------------------------------------------------------
namespace deltakit {
namespace {

class LowrankStage final : public Stage {
 public:
  explicit LowrankStage(const LowrankParams& p) : p_(p) {}
  const char* name() const override { return "lowrank"; }
  StageRole role() const override { return StageRole::Dense; }
  std::string params() const override {
    return (p_.rank ? ":rank=" + std::to_string(p_.rank) : ":energy=" + recipe_number(p_.energy)) +
           ",seed=" + std::to_string(p_.seed);
  }
  std::string unsuitable(const std::vector<uint64_t>& shape) const override {
    return shape.size() < 2 ? "lowrank needs a tensor of 2 or more dims" : "";
  }
  void encode_dense(const TensorDelta& t, std::span<const float> delta, uint64_t rows, uint64_t cols,
                    const ValueType& vt, Encoded& e) const override {
    lowrank_encode(p_, t.name, delta, rows, cols, vt, e);
  }
  std::vector<float> decode_dense(const AttrReader& a, const PartSource& src, uint64_t rows, uint64_t cols,
                                  const ValueType& vt) const override {
    return lowrank_decode(a, src, rows, cols, vt);
  }
  std::unique_ptr<DeltaProduct> dense_product(const AttrReader& a, const PartSource& src, uint64_t rows, uint64_t cols,
                                              const ValueType& vt) const override {
    return lowrank_product(a, src, rows, cols, vt);
  }

 private:
  LowrankParams p_;
};

}  // namespace

std::unique_ptr<Stage> make_lowrank_stage(StageArgs& a, uint64_t seed) {
  LowrankParams p;
  if (a.has("rank") == a.has("energy")) a.fail("give exactly one of rank=R or energy=E");
  p.rank = a.integer("rank", 0, 1, uint64_t{1} << 31);
  p.energy = a.real("energy", 0.0, 0.0, 1.0, true);
  p.seed = a.integer("seed", seed, 0, UINT64_MAX);
  return std::make_unique<LowrankStage>(p);
}

}  // namespace deltakit
