// Importance estimators (src/eval/importance.h) against their definitions computed another way:
// the Fisher diagonal from per-sequence gradients taken by central finite differences of the
// model's loss, one weight at a time; the activation statistics from the linear inputs of a
// forward pass over each sequence alone, recomputed by hand for one layer.
#include "src/eval/importance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "src/model/kernels.h"
#include "src/model/llama_model.h"

namespace deltakit {
namespace {

LlamaConfig tiny_config() {
  LlamaConfig c;
  c.vocab = 11, c.dim = 16, c.hidden = 24, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.head_dim = 4, c.max_seq = 8;
  return c;
}

// Three fixed sequences of T = 5, one with masked targets, as steps 0, 1, 2.
const std::vector<std::vector<int32_t>> kTokens = {{1, 5, 9, 2, 0}, {10, 3, 3, 7, 4}, {6, 6, 1, 8, 2}};
const std::vector<std::vector<int32_t>> kTargets = {{5, 9, 2, 0, 4}, {3, 3, 7, 4, 8}, {-1, -1, 8, 2, 9}};

BatchFn fixed_batches() {
  return [](Batch& b, int64_t step) {
    b.tokens = kTokens.at(static_cast<size_t>(step)), b.targets = kTargets.at(static_cast<size_t>(step));
  };
}

LlamaParams trained_like_params(const LlamaConfig& c) {
  LlamaParams p(c);
  p.init_random(7);
  for (auto& x : p.data()) x *= 5.0f;  // gradients well above finite-difference noise
  for (const auto& s : p.slices())
    if (s.is_norm)
      for (uint64_t i = 0; i < s.numel; ++i) p.data()[s.offset + i] = 1.0f + 0.1f * static_cast<float>(i % 7);
  return p;
}

TEST(Importance, FisherMatchesFiniteDifferences) {
  const LlamaConfig c = tiny_config();
  LlamaParams p = trained_like_params(c);
  ImportanceOptions o;
  o.samples = 3, o.seq_len = 5;
  const auto fisher = fisher_diagonal(p, fixed_batches(), o);
  ASSERT_EQ(fisher.size(), p.slices().size());
  std::vector<float> flat;
  for (size_t t = 0; t < fisher.size(); ++t) {
    EXPECT_EQ(fisher[t].name, p.slices()[t].name);
    EXPECT_EQ(fisher[t].shape, p.slices()[t].shape);
    flat.insert(flat.end(), fisher[t].values.begin(), fisher[t].values.end());
  }
  LlamaModel m(c);
  std::mt19937 rng(3);
  std::uniform_int_distribution<size_t> pick(0, p.data().size() - 1);
  int checked = 0, large = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const size_t i = pick(rng);
    const float keep = p.data()[i], eps = 2e-3f;
    double fd = 0;
    for (size_t s = 0; s < kTokens.size(); ++s) {
      auto loss_at = [&](float x) {
        p.data()[i] = x;
        return static_cast<double>(m.forward(p.view(), kTokens[s].data(), kTargets[s].data(), 1, 5));
      };
      // L_s = seq_len × the token-mean NLL
      const double g = 5.0 * (loss_at(keep + eps) - loss_at(keep - eps)) / (2.0 * eps);
      p.data()[i] = keep;
      fd += g * g / 3.0;
    }
    EXPECT_NEAR(flat[i], fd, 2e-2 * std::max(fd, 1e-2)) << p.slices().size() << " weight " << i;
    ++checked, large += fd > 1e-2;
  }
  EXPECT_EQ(checked, 60);
  EXPECT_GT(large, 10) << "too few weights with a visible gradient to test anything";
}

TEST(Importance, ActivationsMatchADirectComputation) {
  LlamaConfig c = tiny_config();
  c.tie_embeddings = false;
  LlamaParams p = trained_like_params(c);
  ImportanceOptions o;
  o.samples = 3, o.seq_len = 5, o.batch = 2;  // batches of 2 + 1: the statistic must not depend on batching
  const auto act = activation_second_moments(p, fixed_batches(), o);
  ASSERT_EQ(act.size(), 7u * c.layers + 1);
  // Layer 1's down_proj input, by hand: a = silu(h2 Wgᵀ) ⊙ (h2 Wuᵀ), mean of a_c² over 15 positions.
  LlamaModel m(c);
  std::vector<double> want(c.hidden, 0.0), head(c.dim, 0.0);
  for (size_t s = 0; s < kTokens.size(); ++s) {
    m.forward(p.view(), kTokens[s].data(), kTargets[s].data(), 1, 5);
    const auto in = m.linear_inputs(1);
    const ModelWeights w = p.view();
    for (int64_t t = 0; t < 5; ++t) {
      const float* h = in.mlp + t * c.dim;
      for (uint64_t f = 0; f < c.hidden; ++f) {
        double g = 0, u = 0;
        for (uint64_t d = 0; d < c.dim; ++d)
          g += static_cast<double>(w.layers[1].wg[f * c.dim + d]) * h[d], u += w.layers[1].wu[f * c.dim + d] * h[d];
        const double a = g / (1.0 + std::exp(-g)) * u;
        want[f] += a * a / 15.0;
      }
      for (uint64_t d = 0; d < c.dim; ++d) head[d] += std::pow(m.head_input()[t * c.dim + d], 2) / 15.0;
    }
  }
  const ImportanceTensor* down = nullptr;
  for (const auto& t : act)
    if (t.name == "model.layers.1.mlp.down_proj.weight") down = &t;
  ASSERT_NE(down, nullptr);
  ASSERT_EQ(down->shape, std::vector<uint64_t>{c.hidden});
  for (uint64_t f = 0; f < c.hidden; ++f) EXPECT_NEAR(down->values[f], want[f], 1e-4 * std::max(1.0, want[f])) << f;
  EXPECT_EQ(act.back().name, "lm_head.weight");
  for (uint64_t d = 0; d < c.dim; ++d) EXPECT_NEAR(act.back().values[d], head[d], 1e-4 * std::max(1.0, head[d]));
}

}  // namespace
}  // namespace deltakit
