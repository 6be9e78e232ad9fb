#include "src/merge/combine.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace deltakit {

namespace {

// The per-model loops over a block, each in its own function with restrict pointers: inlined
// into the loop over models, GCC 12 vectorized the two together with gathers (vgatherqps: a
// quarter of a task-arithmetic merge's time)
[[gnu::noinline]] void add_block(double* __restrict acc, const float* __restrict v, size_t len) {
  for (size_t j = 0; j < len; ++j) acc[j] += static_cast<double>(v[j]);
}

[[gnu::noinline]] void add_signs(double* __restrict acc, const float* __restrict v, size_t len) {
  for (size_t j = 0; j < len; ++j) acc[j] += static_cast<double>((v[j] > 0.0f) - (v[j] < 0.0f));
}

// ±1 majority (a tie counts as +); v agrees iff v·majority > 0, so a zero never does. All in
// double: one width throughout lets the compiler turn the selects into masked vector adds.
[[gnu::noinline]] void add_agreeing(double* __restrict mixed, double* __restrict divisor,
                                    const double* __restrict majority, const float* __restrict v, double w,
                                    size_t len) {
  for (size_t j = 0; j < len; ++j) {
    const double x = v[j];
    const bool agrees = x * majority[j] > 0.0;
    mixed[j] += agrees ? x : 0.0;
    divisor[j] += agrees ? w : 0.0;
  }
}

// Σw, what normalize divides by (1 where the weights sum to about zero)
double weight_sum(std::span<const double> weights) {
  double all = 0;
  for (double w : weights) all += w;
  return std::fabs(all) < 1e-8 ? 1 : all;
}

// acc += w·(t − b), the difference and the product rounded to float as when weighed in place
[[gnu::noinline]] void add_weighted_difference(double* __restrict acc, const float* __restrict t,
                                               const float* __restrict b, float w, size_t len) {
  for (size_t j = 0; j < len; ++j) acc[j] += static_cast<double>((t[j] - b[j]) * w);
}

}  // namespace

void combine_deltas(std::span<const float> base, const std::vector<std::span<const float>>& weighted,
                    std::span<const double> weights, const CombineOptions& o, std::span<float> out) {
  const size_t m = weighted.size(), n = base.size();
  const double all_weights = weight_sum(weights);
  // Blocks of elements, one model at a time across a block: branch-free loops the compiler
  // vectorizes (random signs made the element-at-a-time version mispredict on every vote). Each
  // element's sums still run over the models in order, so the bits are the same.
  constexpr size_t kBlock = 512;
  const int64_t blocks = static_cast<int64_t>((n + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static)
  for (int64_t bb = 0; bb < blocks; ++bb) {
    const size_t first = static_cast<size_t>(bb) * kBlock, len = std::min(kBlock, n - first);
    double mixed[kBlock], divisor[kBlock];
    std::fill_n(mixed, len, 0.0);
    if (o.consensus == Consensus::None) {
      for (size_t k = 0; k < m; ++k) add_block(mixed, weighted[k].data() + first, len);
      std::fill_n(divisor, len, all_weights);
    } else {
      double vote[kBlock];
      std::fill_n(vote, len, 0.0);
      for (size_t k = 0; k < m; ++k) {
        if (o.consensus == Consensus::Sum)
          add_block(vote, weighted[k].data() + first, len);
        else
          add_signs(vote, weighted[k].data() + first, len);
      }
      double majority[kBlock];
      for (size_t j = 0; j < len; ++j) majority[j] = vote[j] >= 0 ? 1.0 : -1.0;
      std::fill_n(divisor, len, 0.0);
      for (size_t k = 0; k < m; ++k)
        add_agreeing(mixed, divisor, majority, weighted[k].data() + first, weights[k], len);
      for (size_t j = 0; j < len; ++j) divisor[j] = divisor[j] == 0 ? 1.0 : divisor[j];
    }
    const float* b = base.data() + first;
    float* y = out.data() + first;
    for (size_t j = 0; j < len; ++j)
      y[j] =
          static_cast<float>(static_cast<double>(b[j]) + o.lambda * (o.normalize ? mixed[j] / divisor[j] : mixed[j]));
  }
}

void combine_task_arithmetic(std::span<const float> base, const std::vector<std::span<const float>>& models,
                             std::span<const double> weights, double lambda, bool normalize, std::span<float> out) {
  const size_t n = base.size();
  const double all_weights = weight_sum(weights);
  constexpr size_t kBlock = 512;
  for (size_t first = 0; first < n; first += kBlock) {
    const size_t len = std::min(kBlock, n - first);
    const float* b = base.data() + first;
    double mixed[kBlock];
    std::fill_n(mixed, len, 0.0);
    for (size_t k = 0; k < models.size(); ++k)
      add_weighted_difference(mixed, models[k].data() + first, b, static_cast<float>(weights[k]), len);
    float* y = out.data() + first;
    if (normalize)
      for (size_t j = 0; j < len; ++j)
        y[j] = static_cast<float>(static_cast<double>(b[j]) + lambda * (mixed[j] / all_weights));
    else
      for (size_t j = 0; j < len; ++j) y[j] = static_cast<float>(static_cast<double>(b[j]) + lambda * mixed[j]);
  }
}

const char* consensus_name(Consensus c) {
  return c == Consensus::Sum ? "sum" : c == Consensus::Count ? "count" : "none";
}

}  // namespace deltakit
