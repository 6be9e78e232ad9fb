#include "src/merge/sparsify.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "src/core/magnitude_cut.h"
#include "src/core/philox.h"

namespace deltakit {

namespace {
double norm_of(std::span<const float> d, RescaleNorm r) {
  double s = 0;
  for (float v : d) {
    const double a = std::fabs(static_cast<double>(v));
    if (r == RescaleNorm::L1)
      s += a;
    else if (r == RescaleNorm::L2)
      s += a * a;
    else
      s = std::max(s, a);
  }
  return r == RescaleNorm::L2 ? std::sqrt(s) : s;
}

bool norm_rescale(RescaleNorm r) { return r == RescaleNorm::L1 || r == RescaleNorm::L2 || r == RescaleNorm::Linf; }

// After the drop: scale the survivors back to the norm `before` had (mergekit's rescale).
void rescale_to(std::span<float> d, RescaleNorm r, double before) {
  if (!norm_rescale(r)) return;
  const double after = norm_of(d, r);
  constexpr double kEps = 1e-7;  // mergekit's: leave near-zero tensors unscaled
  if (before < kEps || after < kEps) return;
  const float s = static_cast<float>(before / after);
  for (auto& v : d) v *= s;
}

// Drops in place: entry i survives iff keep(i). Inverse rescale divides a survivor by its keep
// probability p(i); the norm rescales restore the norm δ had before the drop.
template <class Keep, class KeepProbability>
void drop_and_rescale(std::span<float> d, RescaleNorm r, Keep keep, KeepProbability p) {
  const double before = norm_rescale(r) ? norm_of(d, r) : 0.0;
  for (uint64_t i = 0; i < d.size(); ++i) {
    if (!keep(i))
      d[i] = 0.0f;
    else if (r == RescaleNorm::Inverse)
      d[i] = static_cast<float>(d[i] / p(i));
  }
  rescale_to(d, r, before);
}

// DARE's and DELLA's Bernoulli draws, a block of Philox words at a time.
class BlockWords {
 public:
  BlockWords(uint64_t seed, const std::string& key) : rng_(seed, key) {}
  uint32_t operator()(uint64_t i) {  // i rises by one per call
    if (i - first_ >= kBlock) {
      first_ = i;
      rng_.words(i, kBlock, words_);
    }
    return words_[i - first_];
  }

 private:
  static constexpr uint64_t kBlock = 1024;
  TensorRng rng_;
  uint64_t first_ = ~uint64_t{0} - kBlock;  // forces a fill on the first call
  uint32_t words_[kBlock];
};
}  // namespace

void sparsify(std::span<float> d, uint64_t cols, const SparsifyOptions& o) {
  if (o.method == SparsifyMethod::None) return;
  if (!(o.density >= 0.0 && o.density <= 1.0))
    throw std::invalid_argument("density must lie in [0, 1], not " + std::to_string(o.density));
  if (o.density >= 1.0) return;  // mergekit: nothing is dropped and nothing rescaled
  const uint64_t n = d.size();
  const double density = o.density;
  const auto constant_p = [density](uint64_t) { return density; };
  switch (o.method) {
    case SparsifyMethod::Magnitude: {
      MagnitudeCut cut = magnitude_cut(d, static_cast<uint64_t>(o.density * static_cast<double>(n)));
      drop_and_rescale(
          d, o.rescale, [&](uint64_t i) { return cut.keep(d[i]); }, constant_p);
      return;
    }
    case SparsifyMethod::MagnitudeOutliers: {
      if (!(o.gamma >= 0.0 && o.gamma <= 1.0)) throw std::invalid_argument("gamma must lie in [0, 1]");
      const int64_t target = static_cast<int64_t>(o.density * static_cast<double>(n));
      int64_t n_top = static_cast<int64_t>(o.gamma * static_cast<double>(n));
      const int64_t n_bot = std::max<int64_t>(0, static_cast<int64_t>(n) - target - n_top);
      n_top = static_cast<int64_t>(n) - target - n_bot;  // fewer outliers dropped if density needs them
      // keep ranks [n_top, n_top + target) in descending order of |δ|: in the top n_top + target,
      // not in the top n_top
      MagnitudeCut upto = magnitude_cut(d, static_cast<uint64_t>(n_top + target));
      MagnitudeCut outliers = magnitude_cut(d, static_cast<uint64_t>(n_top));
      drop_and_rescale(
          d, o.rescale,
          [&](uint64_t i) {
            const bool in = upto.keep(d[i]);  // both cuts are asked about every entry, in order
            const bool outlier = outliers.keep(d[i]);
            return in && !outlier;
          },
          constant_p);
      return;
    }
    case SparsifyMethod::Random: {
      BlockWords word(o.seed, o.rng_key);
      const uint64_t drop_below = TensorRng::drop_threshold(1.0 - o.density);
      drop_and_rescale(
          d, o.rescale, [&](uint64_t i) { return word(i) >= drop_below; }, constant_p);
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
      std::vector<double> p(n);
      std::vector<uint64_t> idx(cols);
      for (uint64_t row = 0; row < n / cols; ++row) {
        const uint64_t first = row * cols;
        std::iota(idx.begin(), idx.end(), first);
        // ascending magnitude, ties to the lower index: rank 0 is the smallest
        std::sort(idx.begin(), idx.end(), [&](uint64_t a, uint64_t b) {
          const float x = std::fabs(d[a]), y = std::fabs(d[b]);
          return x != y ? x < y : a > b;
        });
        for (uint64_t r = 0; r < cols; ++r) {
          const double rank_norm = cols > 1 ? static_cast<double>(r) / static_cast<double>(cols - 1) : 0.0;
          p[idx[r]] = (o.density - o.epsilon) + rank_norm * 2.0 * o.epsilon;
        }
      }
      BlockWords word(o.seed, o.rng_key);
      drop_and_rescale(
          d, o.rescale, [&](uint64_t i) { return word(i) >= TensorRng::drop_threshold(1.0 - p[i]); },
          [&](uint64_t i) { return p[i]; });
      return;
    }
    case SparsifyMethod::None: return;
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
