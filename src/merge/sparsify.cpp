#include "src/merge/sparsify.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "src/core/philox.h"

namespace deltakit {

namespace {
// Indices of `delta` sorted by |δ| descending, ties to the lower index: a total order.
bool larger(std::span<const float> d, uint64_t a, uint64_t b) {
  const float x = std::fabs(d[a]), y = std::fabs(d[b]);
  return x != y ? x > y : a < b;
}

// The k entries of largest |δ| marked true.
std::vector<bool> top_k(std::span<const float> d, uint64_t k) {
  std::vector<bool> keep(d.size(), false);
  if (k == 0) return keep;
  std::vector<uint64_t> idx(d.size());
  std::iota(idx.begin(), idx.end(), 0);
  if (k < d.size())
    std::nth_element(idx.begin(), idx.begin() + static_cast<int64_t>(k - 1), idx.end(),
                     [&](uint64_t a, uint64_t b) { return larger(d, a, b); });
  for (uint64_t j = 0; j < std::min<uint64_t>(k, d.size()); ++j) keep[idx[j]] = true;
  return keep;
}

double norm_of(std::span<const float> d, RescaleNorm r) {
  double s = 0;
  for (float v : d) {
    const double a = std::fabs(static_cast<double>(v));
    if (r == RescaleNorm::L1) s += a;
    else if (r == RescaleNorm::L2) s += a * a;
    else s = std::max(s, a);
  }
  return r == RescaleNorm::L2 ? std::sqrt(s) : s;
}

// Zero the dropped entries; scale the survivors as the rescale option says. keep_p: each
// entry's keep probability (for inverse), or null when every survivor had probability `p`.
void mask_and_rescale(std::span<float> d, const std::vector<bool>& keep, RescaleNorm r,
                      const std::vector<double>* keep_p, double p) {
  const double before = r == RescaleNorm::None || r == RescaleNorm::Inverse ? 0 : norm_of(d, r);
  for (uint64_t i = 0; i < d.size(); ++i) {
    if (!keep[i]) d[i] = 0.0f;
    else if (r == RescaleNorm::Inverse) d[i] = static_cast<float>(d[i] / (keep_p ? (*keep_p)[i] : p));
  }
  if (r == RescaleNorm::L1 || r == RescaleNorm::L2 || r == RescaleNorm::Linf) {
    const double after = norm_of(d, r);
    constexpr double kEps = 1e-7;  // mergekit's: leave near-zero tensors unscaled
    if (before < kEps || after < kEps) return;
    const float s = static_cast<float>(before / after);
    for (auto& v : d) v *= s;
  }
}
}  // namespace

void sparsify(std::span<float> d, uint64_t cols, const SparsifyOptions& o) {
  if (o.method == SparsifyMethod::None) return;
  if (!(o.density >= 0.0 && o.density <= 1.0))
    throw std::invalid_argument("density must lie in [0, 1], not " + std::to_string(o.density));
  if (o.density >= 1.0) return;  // mergekit: nothing is dropped and nothing rescaled
  const uint64_t n = d.size();
  std::vector<bool> keep;
  switch (o.method) {
    case SparsifyMethod::Magnitude:
      keep = top_k(d, static_cast<uint64_t>(o.density * static_cast<double>(n)));
      mask_and_rescale(d, keep, o.rescale, nullptr, o.density);
      return;
    case SparsifyMethod::MagnitudeOutliers: {
      if (!(o.gamma >= 0.0 && o.gamma <= 1.0)) throw std::invalid_argument("gamma must lie in [0, 1]");
      const int64_t target = static_cast<int64_t>(o.density * static_cast<double>(n));
      int64_t n_top = static_cast<int64_t>(o.gamma * static_cast<double>(n));
      const int64_t n_bot = std::max<int64_t>(0, static_cast<int64_t>(n) - target - n_top);
      n_top = static_cast<int64_t>(n) - target - n_bot;  // fewer outliers dropped if density needs them
      // keep ranks [n_top, n_top + target) in descending order of |δ|
      std::vector<uint64_t> idx(n);
      std::iota(idx.begin(), idx.end(), 0);
      std::sort(idx.begin(), idx.end(), [&](uint64_t a, uint64_t b) { return larger(d, a, b); });
      keep.assign(n, false);
      for (int64_t j = n_top; j < n_top + target; ++j) keep[idx[static_cast<size_t>(j)]] = true;
      mask_and_rescale(d, keep, o.rescale, nullptr, o.density);
      return;
    }
    case SparsifyMethod::Random: {
      const TensorRng rng(o.seed, o.rng_key);
      const uint64_t drop_below = TensorRng::drop_threshold(1.0 - o.density);
      keep.assign(n, false);
      for (uint64_t i = 0; i < n; ++i) keep[i] = rng.word(i) >= drop_below;
      mask_and_rescale(d, keep, o.rescale, nullptr, o.density);
      return;
    }
    case SparsifyMethod::DellaMagprune: {
      if (o.density <= 0.0) {
        std::fill(d.begin(), d.end(), 0.0f);
        return;
      }
      if (!(o.density - o.epsilon > 0.0 && o.density + o.epsilon < 1.0))
        throw std::invalid_argument("della: density ± epsilon must lie in (0, 1)");
      if (cols == 0 || n % cols) cols = n;
      const TensorRng rng(o.seed, o.rng_key);
      std::vector<double> p(n);
      keep.assign(n, false);
      std::vector<uint64_t> idx(cols);
      for (uint64_t row = 0; row < n / cols; ++row) {
        const uint64_t first = row * cols;
        std::iota(idx.begin(), idx.end(), first);
        // ascending magnitude: rank 0 is the smallest
        std::sort(idx.begin(), idx.end(), [&](uint64_t a, uint64_t b) { return larger(d, b, a); });
        for (uint64_t r = 0; r < cols; ++r) {
          const double rank_norm = cols > 1 ? static_cast<double>(r) / static_cast<double>(cols - 1) : 0.0;
          p[idx[r]] = (o.density - o.epsilon) + rank_norm * 2.0 * o.epsilon;
        }
      }
      for (uint64_t i = 0; i < n; ++i) keep[i] = rng.word(i) >= TensorRng::drop_threshold(1.0 - p[i]);
      mask_and_rescale(d, keep, o.rescale, &p, o.density);
      return;
    }
    case SparsifyMethod::None:
      return;
  }
}

const char* sparsify_name(SparsifyMethod m) {
  switch (m) {
    case SparsifyMethod::Magnitude: return "magnitude";
    case SparsifyMethod::Random: return "random";
    case SparsifyMethod::MagnitudeOutliers: return "magnitude_outliers";
    case SparsifyMethod::DellaMagprune: return "della_magprune";
    case SparsifyMethod::None: break;
  }
  return "none";
}

const char* rescale_name(RescaleNorm r) {
  switch (r) {
    case RescaleNorm::L1: return "l1";
    case RescaleNorm::L2: return "l2";
    case RescaleNorm::Linf: return "linf";
    case RescaleNorm::Inverse: return "inverse";
    case RescaleNorm::None: break;
  }
  return "none";
}

RescaleNorm parse_rescale(const std::string& s) {
  if (s == "none") return RescaleNorm::None;
  if (s == "l1") return RescaleNorm::L1;
  if (s == "l2") return RescaleNorm::L2;
  if (s == "linf") return RescaleNorm::Linf;
  if (s == "inverse") return RescaleNorm::Inverse;
  throw std::invalid_argument("rescale_norm must be none, l1, l2, linf or inverse, not \"" + s + "\"");
}

}  // namespace deltakit
