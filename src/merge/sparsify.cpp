#include "src/merge/sparsify.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>
#include <vector>

#include "src/codec/score_cut.h"
#include "src/core/error.h"
#include "src/core/philox.h"

namespace deltakit {

namespace {
constexpr size_t kDropBlock = 1024;  // a multiple of 8: the norm lanes follow the global index

bool norm_rescale(RescaleNorm r) { return r == RescaleNorm::L1 || r == RescaleNorm::L2 || r == RescaleNorm::Linf; }

// A norm summed in 8 interleaved lanes (element i into lane i mod 8, the lanes added in a fixed
// order at the end): the compiler vectorizes it, and the bits do not depend on threads or blocks.
class LaneNorm {
 public:
  explicit LaneNorm(RescaleNorm r) : r_(r) {}
  // x: the elements from a multiple of 8 on
  void add(const float* x, size_t len) {
    if (r_ == RescaleNorm::L1) add_as(x, len, [](double a, double v) { return a + std::fabs(v); });
    if (r_ == RescaleNorm::L2) add_as(x, len, [](double a, double v) { return a + v * v; });
    if (r_ == RescaleNorm::Linf) add_as(x, len, [](double a, double v) { return std::max(a, std::fabs(v)); });
  }
  double value() const {
    const double s = ((lane_[0] + lane_[1]) + (lane_[2] + lane_[3])) + ((lane_[4] + lane_[5]) + (lane_[6] + lane_[7]));
    if (r_ == RescaleNorm::Linf) return *std::max_element(lane_, lane_ + 8);
    return r_ == RescaleNorm::L2 ? std::sqrt(s) : s;
  }

 private:
  template <class Step>
  void add_as(const float* x, size_t len, Step step) {
    size_t g = 0;
    for (; g + 8 <= len; g += 8)
      for (size_t l = 0; l < 8; ++l) lane_[l] = step(lane_[l], static_cast<double>(x[g + l]));
    for (size_t l = 0; g + l < len; ++l) lane_[l] = step(lane_[l], static_cast<double>(x[g + l]));
  }
  RescaleNorm r_;
  double lane_[8] = {};
};

// keep[j] = cut.keep(|x[j]|'s key) for j < len, in order (len <= kDropBlock). Where no key of the
// block equals the threshold (or no tie is left to spend), keep() is just key > threshold, a loop
// that vectorizes; else the keys are asked one by one.
void keep_by_cut(ScoreCut& cut, const float* x, size_t len, uint8_t* keep) {
  uint32_t keys[kDropBlock];
  uint32_t tied = 0;
  for (size_t j = 0; j < len; ++j) {
    keys[j] = magnitude_key(x[j]);
    tied |= keys[j] == cut.threshold;
  }
  if (!tied || cut.ties_keep == 0) {
    for (size_t j = 0; j < len; ++j) keep[j] = keys[j] > cut.threshold;
    return;
  }
  // deltas of bf16 weights tie often, so many blocks hold ties: where the ties left cover all of
  // this block's, each is kept (a vectorized count and compare); one by one only where they run out
  uint64_t ties = 0;
  for (size_t j = 0; j < len; ++j) ties += keys[j] == cut.threshold;
  if (ties <= cut.ties_keep) {
    for (size_t j = 0; j < len; ++j) keep[j] = keys[j] >= cut.threshold;
    cut.ties_keep -= ties;
    return;
  }
  for (size_t j = 0; j < len; ++j) keep[j] = cut.keep(keys[j]);
}

// Drops in place, kDropBlock at a time: mask(first, len, keep) says which of d[first, first + len)
// survive (called once per block, in order). Inverse rescale divides a survivor by its keep
// probability (p[i], or p_all); the norm rescales restore the norm δ had before the drop
// (mergekit's rescale), leaving near-zero tensors unscaled as mergekit does.
template <class Mask>
void drop_and_rescale(std::span<float> d, RescaleNorm r, Mask mask, const std::vector<double>* p, double p_all) {
  const bool by_norm = norm_rescale(r);
  LaneNorm before(r), after(r);
  uint8_t keep[kDropBlock];
  for (size_t first = 0; first < d.size(); first += kDropBlock) {
    const size_t len = std::min(kDropBlock, d.size() - first);
    float* x = d.data() + first;
    mask(first, len, keep);
    if (by_norm) before.add(x, len);
    if (r == RescaleNorm::Inverse)
      for (size_t j = 0; j < len; ++j) x[j] = keep[j] ? static_cast<float>(x[j] / (p ? (*p)[first + j] : p_all)) : 0.0f;
    else
      for (size_t j = 0; j < len; ++j) x[j] = keep[j] ? x[j] : 0.0f;
    if (by_norm) after.add(x, len);
  }
  constexpr double kEps = 1e-7;
  if (!by_norm || before.value() < kEps || after.value() < kEps) return;
  const float scale = static_cast<float>(before.value() / after.value());
  for (auto& v : d) v *= scale;
}
}  // namespace

void sparsify(std::span<float> d, uint64_t cols, const SparsifyOptions& o) {
  if (o.method == SparsifyMethod::None) return;
  if (!(o.density >= 0.0 && o.density <= 1.0))
    throw Error(ErrorCode::InvalidValue, "", "density must lie in [0, 1], not " + std::to_string(o.density));
  if (o.density >= 1.0) return;  // mergekit: nothing is dropped and nothing rescaled
  const uint64_t n = d.size();
  switch (o.method) {
    case SparsifyMethod::Magnitude: {
      ScoreCut cut = magnitude_cut(d, static_cast<uint64_t>(o.density * static_cast<double>(n)));
      const auto mask = [&](size_t first, size_t len, uint8_t* keep) { keep_by_cut(cut, d.data() + first, len, keep); };
      drop_and_rescale(d, o.rescale, mask, nullptr, o.density);
      return;
    }
    case SparsifyMethod::MagnitudeOutliers: {
      if (!(o.gamma >= 0.0 && o.gamma <= 1.0)) throw Error(ErrorCode::InvalidValue, "", "gamma must lie in [0, 1]");
      const int64_t target = static_cast<int64_t>(o.density * static_cast<double>(n));
      int64_t n_top = static_cast<int64_t>(o.gamma * static_cast<double>(n));
      const int64_t n_bot = std::max<int64_t>(0, static_cast<int64_t>(n) - target - n_top);
      n_top = static_cast<int64_t>(n) - target - n_bot;  // fewer outliers dropped if density needs them
      // keep ranks [n_top, n_top + target) in descending order of |δ|: in the top n_top + target,
      // not in the top n_top
      ScoreCut upto = magnitude_cut(d, static_cast<uint64_t>(n_top + target));
      ScoreCut outliers = magnitude_cut(d, static_cast<uint64_t>(n_top));
      const auto mask = [&](size_t first, size_t len, uint8_t* keep) {
        for (size_t j = 0; j < len; ++j) {
          const bool in = upto.keep(magnitude_key(d[first + j]));  // both cuts see every entry, in order
          keep[j] = in & !outliers.keep(magnitude_key(d[first + j]));
        }
      };
      drop_and_rescale(d, o.rescale, mask, nullptr, o.density);
      return;
    }
    case SparsifyMethod::Random: {
      const TensorRng rng(o.seed, o.rng_key);
      const uint64_t drop_below = TensorRng::drop_threshold(1.0 - o.density);
      const auto mask = [&](size_t first, size_t len, uint8_t* keep) {
        uint32_t words[kDropBlock];
        rng.words(first, len, words);
        for (size_t j = 0; j < len; ++j) keep[j] = words[j] >= drop_below;
      };
      drop_and_rescale(d, o.rescale, mask, nullptr, o.density);
      return;
    }
    case SparsifyMethod::DellaMagprune: {
      if (o.density <= 0.0) {
        std::fill(d.begin(), d.end(), 0.0f);
        return;
      }
      if (!(o.density - o.epsilon > 0.0 && o.density + o.epsilon < 1.0))
        throw Error(ErrorCode::InvalidValue, "", "della: density ± epsilon must lie in (0, 1)");
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
      const TensorRng rng(o.seed, o.rng_key);
      const auto mask = [&](size_t first, size_t len, uint8_t* keep) {
        uint32_t words[kDropBlock];
        rng.words(first, len, words);
        for (size_t j = 0; j < len; ++j) keep[j] = words[j] >= TensorRng::drop_threshold(1.0 - p[first + j]);
      };
      drop_and_rescale(d, o.rescale, mask, &p, o.density);
      return;
    }
    case SparsifyMethod::None: return;
  }
}

// --- the same, a block at a time ---------------------------------------------------------------
struct StreamSparsifier::State {
  explicit State(RescaleNorm r) : before(r), after(r) {}
  std::optional<MagnitudeCutBuilder> builder;
  ScoreCut cut, norm_cut;  // the magnitude cut: spent by drop(), and a copy spent by the norm pass
  LaneNorm before, after;
  std::optional<TensorRng> rng;
  uint64_t drop_below = 0;
  float scale = 1.0f;
  bool scaled = false;
};

bool StreamSparsifier::supports(const SparsifyOptions& o) {
  return o.method == SparsifyMethod::None || o.method == SparsifyMethod::Magnitude ||
         o.method == SparsifyMethod::Random;
}

StreamSparsifier::StreamSparsifier(uint64_t n, const SparsifyOptions& o) : o_(o) {
  if (!supports(o)) throw std::logic_error("StreamSparsifier: " + std::string(sparsify_name(o.method)));
  if (o.method == SparsifyMethod::None) return;
  if (!(o.density >= 0.0 && o.density <= 1.0))
    throw Error(ErrorCode::InvalidValue, "", "density must lie in [0, 1], not " + std::to_string(o.density));
  if (o.density >= 1.0) return;  // as sparsify: nothing dropped, nothing rescaled
  active_ = true;
  s_ = std::make_unique<State>(o.rescale);
  if (o.method == SparsifyMethod::Magnitude) {
    s_->builder.emplace(static_cast<uint64_t>(o.density * static_cast<double>(n)));
    if (s_->builder->done()) s_->cut = s_->norm_cut = s_->builder->cut();
  } else {
    s_->rng.emplace(o.seed, o.rng_key);
    s_->drop_below = TensorRng::drop_threshold(1.0 - o.density);
  }
  norms_left_ = norm_rescale(o.rescale);
}

StreamSparsifier::~StreamSparsifier() = default;

bool StreamSparsifier::needs_pass() const {
  if (!active_) return false;
  return (s_->builder && !s_->builder->done()) || norms_left_;
}

void StreamSparsifier::keep_mask(uint64_t first, const float* x, size_t len, ScoreCut& cut, uint8_t* keep) const {
  if (s_->rng) {
    uint32_t words[kDropBlock];
    s_->rng->words(first, len, words);
    for (size_t j = 0; j < len; ++j) keep[j] = words[j] >= s_->drop_below;
  } else {
    keep_by_cut(cut, x, len, keep);
  }
}

void StreamSparsifier::observe(uint64_t first, std::span<const float> block) {
  if (s_->builder && !s_->builder->done()) return s_->builder->add(block);
  // the norm pass: ‖δ‖ and ‖δ_kept‖ in drop_and_rescale's lanes (blocks start on a multiple of 8)
  uint8_t keep[kDropBlock];
  float kept[kDropBlock];
  for (size_t at = 0; at < block.size(); at += kDropBlock) {
    const size_t len = std::min(kDropBlock, block.size() - at);
    const float* x = block.data() + at;
    keep_mask(first + at, x, len, s_->norm_cut, keep);
    s_->before.add(x, len);
    for (size_t j = 0; j < len; ++j) kept[j] = keep[j] ? x[j] : 0.0f;
    s_->after.add(kept, len);
  }
}

void StreamSparsifier::end_pass() {
  if (s_->builder && !s_->builder->done()) {
    s_->builder->next();
    if (s_->builder->done()) s_->cut = s_->norm_cut = s_->builder->cut();
    return;
  }
  norms_left_ = false;
  constexpr double kEps = 1e-7;
  if (s_->before.value() < kEps || s_->after.value() < kEps) return;
  s_->scale = static_cast<float>(s_->before.value() / s_->after.value());
  s_->scaled = true;
}

void StreamSparsifier::drop(uint64_t first, std::span<float> block) {
  if (!active_) return;
  uint8_t keep[kDropBlock];
  for (size_t at = 0; at < block.size(); at += kDropBlock) {
    const size_t len = std::min(kDropBlock, block.size() - at);
    float* x = block.data() + at;
    keep_mask(first + at, x, len, s_->cut, keep);
    if (o_.rescale == RescaleNorm::Inverse)
      for (size_t j = 0; j < len; ++j) x[j] = keep[j] ? static_cast<float>(x[j] / o_.density) : 0.0f;
    else
      for (size_t j = 0; j < len; ++j) x[j] = keep[j] ? x[j] : 0.0f;
    if (s_->scaled)
      for (size_t j = 0; j < len; ++j) x[j] *= s_->scale;
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
  throw Error(ErrorCode::InvalidValue, "", "rescale_norm must be none, l1, l2, linf or inverse, not \"" + s + "\"");
}

}  // namespace deltakit
