// Gradient checks of the model engine (src/model): each layer's backward, and the whole model's,
// against central finite differences. fp32 throughout; each check compares a directional
// derivative: for a random direction v, (L(x + εv) − L(x − εv)) / 2ε against Σ ∂L/∂x · v, where
// L = Σ r ⊙ out (in double) for a fixed random r. Tolerance: |num − ana| ≤ 2e-3 · max(1, |ana|)
// with ε = 1e-3 on O(1) inputs (fp32 rounding of out, ~1e-7 relative, divided by ε gives ~1e-4).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "src/eval/batches.h"
#include "src/model/kernels.h"
#include "src/model/llama_model.h"
#include "src/model/trainer.h"

namespace deltakit {
namespace {

namespace k = kernels;

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

// f(x) -> L; checks grad (the analytic ∂L/∂x) along a random direction.
void check_direction(std::vector<float>& x, const std::vector<float>& grad, const std::function<double()>& f,
                     const char* what, uint32_t seed, float eps = 1e-3f) {
  auto v = randn(x.size(), seed);
  auto x0 = x;
  for (size_t i = 0; i < x.size(); ++i) x[i] = x0[i] + eps * v[i];
  const double lp = f();
  for (size_t i = 0; i < x.size(); ++i) x[i] = x0[i] - eps * v[i];
  const double lm = f();
  x = x0;
  const double num = (lp - lm) / (2.0 * eps), ana = dot(grad, v);
  EXPECT_NEAR(num, ana, 2e-3 * std::max(1.0, std::fabs(ana))) << what;
}

TEST(KernelGrad, Matmul) {
  const int64_t M = 37, K = 19, N = 45;  // over one GEMM row block, with remainders
  auto x = randn(M * K, 1), w = randn(N * K, 2, 0.3f), b = randn(N, 3), r = randn(M * N, 4);
  std::vector<float> out(M * N), dx(M * K, 0), dw(N * K, 0), db(N, 0);
  auto f = [&] {
    k::matmul_forward(out.data(), x.data(), w.data(), b.data(), M, K, N);
    return dot(out, r);
  };
  f();
  k::matmul_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), M, K, N);
  check_direction(x, dx, f, "d/dx", 10);
  check_direction(w, dw, f, "d/dW", 11);
  check_direction(b, db, f, "d/db", 12);
}

TEST(KernelGrad, RmsNorm) {
  const int64_t M = 7, C = 24;
  auto x = randn(M * C, 1), w = randn(C, 2), r = randn(M * C, 3);
  std::vector<float> out(M * C), rstd(M), dx(M * C, 0), dw(C, 0);
  auto f = [&] {
    k::rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), M, C, 1e-5f);
    return dot(out, r);
  };
  f();
  k::rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), M, C);
  check_direction(x, dx, f, "d/dx", 10);
  check_direction(w, dw, f, "d/dw", 11);
}

TEST(KernelGrad, Rope) {
  const int64_t M = 9, H = 3, hd = 8;
  std::vector<float> ct(16 * hd / 2), st(16 * hd / 2);
  k::rope_tables(ct.data(), st.data(), 16, hd, 10000.0);
  std::vector<int32_t> pos = {0, 1, 2, 3, 15, 7, 8, 2, 11};
  auto x = randn(M * H * hd, 1), r = randn(M * H * hd, 2);
  auto f = [&] {
    auto y = x;
    k::rope_forward(y.data(), pos.data(), ct.data(), st.data(), M, H, hd);
    return dot(y, r);
  };
  auto g = r;
  k::rope_backward(g.data(), pos.data(), ct.data(), st.data(), M, H, hd);
  check_direction(x, g, f, "d/dx", 10);
  // position 0 is the identity; the rotation keeps norms
  auto y = x;
  k::rope_forward(y.data(), pos.data(), ct.data(), st.data(), M, H, hd);
  for (int64_t i = 0; i < H * hd; ++i) EXPECT_FLOAT_EQ(y[i], x[i]);
  EXPECT_NEAR(dot(y, y), dot(x, x), 1e-3 * dot(x, x));
}

TEST(KernelGrad, GroupedQueryAttention) {
  const int64_t B = 2, T = 6, H = 4, KV = 2, hd = 5;
  auto q = randn(B * T * H * hd, 1), kk = randn(B * T * KV * hd, 2), v = randn(B * T * KV * hd, 3),
       r = randn(B * T * H * hd, 4);
  std::vector<float> out(q.size()), att(B * H * T * T), dq(q.size()), dk(kk.size()), dv(v.size());
  auto f = [&] {
    k::attention_forward(out.data(), att.data(), q.data(), kk.data(), v.data(), B, T, H, KV, hd);
    return dot(out, r);
  };
  f();
  k::attention_backward(dq.data(), dk.data(), dv.data(), r.data(), att.data(), q.data(), kk.data(), v.data(), B, T, H,
                        KV, hd);
  check_direction(q, dq, f, "d/dq", 10);
  check_direction(kk, dk, f, "d/dk", 11);
  check_direction(v, dv, f, "d/dv", 12);
  // causal: position 0 attends only to itself
  for (int64_t h = 0; h < H; ++h) EXPECT_FLOAT_EQ(att[h * T * T], 1.0f);
}

TEST(KernelGrad, SwiGlu) {
  const int64_t n = 50;
  auto g = randn(n, 1, 2.0f), u = randn(n, 2), r = randn(n, 3);
  std::vector<float> out(n), dg(n), du(n);
  auto f = [&] {
    k::swiglu_forward(out.data(), g.data(), u.data(), n);
    return dot(out, r);
  };
  k::swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  check_direction(g, dg, f, "d/dgate", 10);
  check_direction(u, du, f, "d/dup", 11);
}

TEST(KernelGrad, CrossEntropy) {
  const int64_t M = 6, V = 13;
  auto logits = randn(M * V, 1, 2.0f);
  std::vector<int32_t> targets = {3, -1, 0, 12, 7, 7};
  std::vector<float> losses(M), probs(M * V), d(M * V);
  auto f = [&] {
    probs = logits;
    k::crossentropy_forward(losses.data(), probs.data(), targets.data(), M, V);
    double s = 0;
    for (float l : losses) s += l;
    return s;
  };
  f();
  k::crossentropy_backward(d.data(), probs.data(), targets.data(), M, V, 1.0f);
  check_direction(logits, d, f, "d/dlogits", 10);
  EXPECT_EQ(losses[1], 0.0f);
  // a target far below the max still gives a finite loss (log p from the shifted logit)
  std::vector<float> extreme = {0.0f, 200.0f};
  std::vector<int32_t> t0 = {0};
  float loss = 0;
  k::crossentropy_forward(&loss, extreme.data(), t0.data(), 1, 2);
  EXPECT_NEAR(loss, 200.0f, 1e-3);
}

// The whole model: directional derivative along each parameter tensor in turn.
void check_model(bool qkv_bias, bool tied) {
  LlamaConfig c;
  c.vocab = 11, c.dim = 16, c.hidden = 24, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.head_dim = 4, c.max_seq = 8;
  c.qkv_bias = qkv_bias, c.tie_embeddings = tied;
  LlamaParams p(c);
  p.init_random(7);
  // larger weights than training starts from, so every path carries a visible gradient
  for (auto& x : p.data()) x *= 10.0f;
  for (const auto& s : p.slices())
    if (s.is_norm || s.shape.size() == 1) {
      auto r = randn(s.numel, 99, 0.3f);
      for (uint64_t i = 0; i < s.numel; ++i) p.data()[s.offset + i] = (s.is_norm ? 1.0f : 0.0f) + r[i];
    }
  const int64_t B = 2, T = 5;
  std::vector<int32_t> tokens = {1, 5, 9, 2, 0, 10, 3, 3, 7, 4};
  std::vector<int32_t> targets = {5, 9, 2, 0, -1, 3, 3, 7, 4, 8};
  LlamaModel m(c);
  std::vector<float> grads(p.data().size(), 0.0f);
  m.forward(p.bind(), tokens.data(), targets.data(), B, T);
  m.backward(p.bind(), p.bind(grads.data()));
  uint32_t seed = 100;
  for (const auto& s : p.slices()) {
    auto v = randn(s.numel, seed++);
    const float eps = 1e-3f;
    auto at = [&](float sign) {
      for (uint64_t i = 0; i < s.numel; ++i) p.data()[s.offset + i] += sign * eps * v[i];
      const double l = m.forward(p.bind(), tokens.data(), targets.data(), B, T);
      for (uint64_t i = 0; i < s.numel; ++i) p.data()[s.offset + i] -= sign * eps * v[i];
      return l;
    };
    const double num = (at(1.0f) - at(-1.0f)) / (2.0 * eps);
    double ana = 0;
    for (uint64_t i = 0; i < s.numel; ++i) ana += static_cast<double>(grads[s.offset + i]) * v[i];
    EXPECT_NEAR(num, ana, 2e-3 * std::max(1.0, std::fabs(ana))) << s.name;
  }
}

// A loss taken on the logits outside the model (distillation): L = Σ r ⊙ logits.
TEST(ModelGrad, BackwardFromLogits) {
  LlamaConfig c;
  c.vocab = 11, c.dim = 16, c.hidden = 24, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.head_dim = 4, c.max_seq = 8;
  LlamaParams p(c);
  p.init_random(5);
  for (auto& x : p.data()) x *= 10.0f;
  for (const auto& s : p.slices())
    if (s.is_norm) std::fill_n(p.data().begin() + static_cast<int64_t>(s.offset), s.numel, 1.0f);
  const int64_t B = 2, T = 4;
  std::vector<int32_t> tokens = {1, 5, 9, 2, 10, 3, 3, 7};
  auto r = randn(static_cast<size_t>(B * T) * c.vocab, 3);
  LlamaModel m(c);
  auto loss = [&] {
    const float* z = m.forward_logits(p.bind(), tokens.data(), B, T);
    double s = 0;
    for (size_t i = 0; i < r.size(); ++i) s += static_cast<double>(z[i]) * r[i];
    return s;
  };
  std::vector<float> grads(p.data().size(), 0.0f);
  loss();
  m.backward_from_logits(p.bind(), p.bind(grads.data()), r.data());
  check_direction(p.data(), grads, loss, "dL/dθ through the logits", 21);
}

TEST(ModelGrad, LlamaUntied) { check_model(false, false); }
TEST(ModelGrad, Qwen2BiasesTiedEmbeddings) { check_model(true, true); }

// The KV-cache decoder and the teacher-forced forward agree on the next token.
TEST(ModelGenerate, KvCacheMatchesFullForward) {
  LlamaConfig c;
  c.vocab = 17, c.dim = 16, c.hidden = 24, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.head_dim = 4, c.max_seq = 16;
  LlamaParams p(c);
  p.init_random(3);
  for (auto& x : p.data()) x *= 20.0f;  // a peaked distribution: argmax is not a near tie
  for (const auto& s : p.slices())
    if (s.is_norm) std::fill(p.data().begin() + s.offset, p.data().begin() + s.offset + s.numel, 1.0f);
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {4}, {5, 6, 7, 8, 9}};
  auto r = generate_greedy(c, p.bind(), prompts, 6, -1);
  LlamaModel m(c);
  for (size_t s = 0; s < prompts.size(); ++s) {
    ASSERT_EQ(r.tokens[s].size(), 6u);
    std::vector<int32_t> seq = prompts[s];
    seq.insert(seq.end(), r.tokens[s].begin(), r.tokens[s].end());
    std::vector<int32_t> tg(seq.size(), -1);
    m.forward(p.bind(), seq.data(), tg.data(), 1, static_cast<int64_t>(seq.size()));
    for (size_t i = prompts[s].size() - 1; i + 1 < seq.size(); ++i) {
      const float* pr = m.probs() + i * c.vocab;
      EXPECT_EQ(std::max_element(pr, pr + c.vocab) - pr, seq[i + 1]) << "prompt " << s << " position " << i;
    }
  }
}

}  // namespace
}  // namespace deltakit

namespace deltakit {
namespace {

// Training lowers the loss on the embedded corpus, and the same seed gives the same weights
// for any thread count (work is split by rows and groups, never by a reduction axis).
TEST(Trainer, LossDecreasesAndRunsAreReproducible) {
  LlamaConfig c;
  c.vocab = 260, c.dim = 32, c.hidden = 64, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.head_dim = 8, c.max_seq = 32;
  TrainOptions o;
  o.steps = 40, o.batch = 4, o.seq = 32, o.warmup = 5, o.lr = 3e-3;
  auto run = [&](int threads) {
    kernels::set_threads(threads);
    LlamaParams p(c);
    p.init_random(5);
    auto losses = train(p, o, [](Batch& b, int64_t step) { corpus_batch(b, 9, step, 0.1); }, {});
    return std::make_pair(losses, p.data());
  };
  auto [l1, w1] = run(1);
  auto [l2, w2] = run(2);
  kernels::set_threads(0);
  float first = 0, last = 0;
  for (int i = 0; i < 5; ++i) first += l1[i], last += l1[l1.size() - 1 - i];
  EXPECT_LT(last, 0.7f * first) << "mean of the first five losses " << first / 5 << ", last five " << last / 5;
  EXPECT_EQ(l1, l2);
  EXPECT_TRUE(w1 == w2);
}

}  // namespace
}  // namespace deltakit
