#include "src/merge/selective_merge.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace deltakit {

void model_stock(std::span<const float> base, std::span<const std::span<float>> models, uint64_t cols, bool filter_wise,
                 std::span<float> out) {
  const size_t k = models.size(), n = out.size();
  const size_t row = filter_wise ? std::max<uint64_t>(1, cols) : n;
  for (size_t r0 = 0; r0 < n; r0 += row) {
    const size_t len = std::min(row, n - r0);
    auto offset = [&](size_t j, size_t i) { return static_cast<double>(models[j][r0 + i]) - base[r0 + i]; };
    std::vector<double> norm(k, 0.0);
    for (size_t j = 0; j < k; ++j) {
      for (size_t i = 0; i < len; ++i) norm[j] += offset(j, i) * offset(j, i);
      norm[j] = std::sqrt(norm[j]);
    }
    double cos_sum = 0;
    size_t pairs = 0;
    for (size_t a = 0; a < k; ++a)
      for (size_t b = a + 1; b < k; ++b, ++pairs) {
        double d = 0;
        for (size_t i = 0; i < len; ++i) d += offset(a, i) * offset(b, i);
        cos_sum += std::clamp(d / std::max(norm[a] * norm[b], 1e-6), -1.0, 1.0);
      }
    const double cos = cos_sum / static_cast<double>(pairs), N = static_cast<double>(k);
    const double t = N * cos / (1 + (N - 1) * cos);
    for (size_t i = 0; i < len; ++i) {
      double avg = 0;
      for (size_t j = 0; j < k; ++j) avg += models[j][r0 + i];
      out[r0 + i] = static_cast<float>(t * (avg / N) + (1 - t) * base[r0 + i]);
    }
  }
}

void sce_merge(std::span<const float> base, std::span<const std::span<float>> models, double select_topk,
               std::span<float> out) {
  const size_t k = models.size(), n = out.size();
  for (auto& m : models)
    for (size_t i = 0; i < n; ++i) m[i] -= base[i];  // τ_i in place
  if (select_topk < 1) {
    std::vector<float> var(n);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; ++i) {
      double mean = 0, sq = 0;
      for (size_t j = 0; j < k; ++j) mean += models[j][i];
      mean /= static_cast<double>(k);
      for (size_t j = 0; j < k; ++j) sq += (models[j][i] - mean) * (models[j][i] - mean);
      var[i] = static_cast<float>(sq / static_cast<double>(k));
      nonzero += var[i] != 0;
    }
    const size_t keep = select_topk <= 0 ? 0 : static_cast<size_t>(static_cast<double>(nonzero) * select_topk);
    std::vector<uint8_t> kept(n, 0);
    if (keep > 0) {
      std::vector<uint32_t> idx(n);
      std::iota(idx.begin(), idx.end(), 0u);
      std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(keep - 1), idx.end(),
                       [&](uint32_t a, uint32_t b) { return var[a] > var[b] || (var[a] == var[b] && a < b); });
      for (size_t q = 0; q < keep; ++q) kept[idx[q]] = 1;
    }
    for (auto& m : models)
      for (size_t i = 0; i < n; ++i)
        if (!kept[i]) m[i] = 0.0f;
  }
  std::vector<double> w(k, 0.0);
  double total = 0;
  for (size_t j = 0; j < k; ++j) {
    for (size_t i = 0; i < n; ++i) w[j] += static_cast<double>(models[j][i]) * models[j][i];
    w[j] /= static_cast<double>(std::max<size_t>(1, n));
    total += w[j];
  }
  for (double& x : w) x = std::fabs(total) < 1e-6 ? 1.0 / static_cast<double>(k) : x / total;
  for (size_t i = 0; i < n; ++i) {
    double sum = 0;
    for (size_t j = 0; j < k; ++j) sum += models[j][i];
    const float majority = sum >= 0 ? 1.0f : -1.0f;
    double num = 0, den = 0;
    for (size_t j = 0; j < k; ++j) {
      const float v = models[j][i];
      const float sign = static_cast<float>((v > 0) - (v < 0));
      if (sign != majority) continue;  // erased (a zero entry has no sign and is erased too)
      num += v * w[j];
      den += w[j];
    }
    out[i] = static_cast<float>(base[i] + num / std::max(den, 1e-6));
  }
}

void nearswap(std::span<const float> base, std::span<const float> model, double t, std::span<float> out) {
  for (size_t i = 0; i < out.size(); ++i) {
    const double diff = std::max(std::fabs(static_cast<double>(base[i]) - model[i]), 1e-6);
    const double w = std::clamp(t / diff, 0.0, 1.0);
    out[i] = static_cast<float>(w * model[i] + (1 - w) * base[i]);
  }
}

void arcee_fusion(std::span<const float> base, std::span<const float> model, uint64_t cols, std::span<float> out) {
  const size_t n = out.size(), row = std::max<uint64_t>(1, cols);
  std::vector<float> score(n);
  std::vector<double> p(row), q(row);
  for (size_t r0 = 0; r0 < n; r0 += row) {
    const size_t len = std::min(row, n - r0);
    auto softmax = [&](std::span<const float> x, std::vector<double>& s) {
      double mx = -INFINITY, sum = 0;
      for (size_t i = 0; i < len; ++i) mx = std::max(mx, static_cast<double>(x[r0 + i]));
      for (size_t i = 0; i < len; ++i) sum += s[i] = std::exp(x[r0 + i] - mx);
      for (size_t i = 0; i < len; ++i) s[i] = s[i] / sum + 1e-8;
    };
    softmax(model, p);
    softmax(base, q);
    double kl = 0;
    for (size_t i = 0; i < len; ++i) kl += p[i] * std::log(p[i] / q[i]);
    for (size_t i = 0; i < len; ++i)
      score[r0 + i] = static_cast<float>(std::fabs(static_cast<double>(model[r0 + i]) - base[r0 + i]) * kl);
  }
  std::vector<float> sorted = score;
  std::sort(sorted.begin(), sorted.end());
  auto quantile = [&](double qq) { return sorted[static_cast<size_t>(qq * static_cast<double>(n - 1))]; };
  const double threshold = quantile(0.5) + 1.5 * (static_cast<double>(quantile(0.75)) - quantile(0.25));
  for (size_t i = 0; i < n; ++i)
    out[i] = score[i] >= threshold ? base[i] + (model[i] - base[i]) : base[i];  // θ_b + δ in fp32, as mergekit
}

}  // namespace deltakit
