#include "src/serve/engine.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "src/core/fixed_dot.h"
#include "src/model/kernels.h"
#include "src/serve/invariant_gemm.h"

namespace deltakit {

namespace k = kernels;

Sequence::Sequence(const ServedBase& base, std::shared_ptr<const Tenant> t, int64_t cap)
    : tenant(std::move(t)), capacity(cap) {
  const size_t n = static_cast<size_t>(base.config.layers * cap * base.config.kv_dim());
  k.assign(n, 0.0f);
  v.assign(n, 0.0f);
}

void Engine::linear(float* out, const float* in, const float* w, const float* bias, int64_t K, int64_t N,
                    std::unique_ptr<DeltaProduct> TenantLayer::*delta, int64_t layer) {
  invariant_gemm(out, in, w, bias, M_, K, N, threads_);
  std::vector<const Segment*> todo;
  for (const Segment& s : segments_)
    if (s.tenant && (s.tenant->layers[layer].*delta)) todo.push_back(&s);
  auto run = [&](const Segment& s, unsigned threads) {
    (s.tenant->layers[layer].*delta)->multiply_add(in + s.begin * K, s.end - s.begin, out + s.begin * N, threads);
  };
  // tenants in parallel (their rows are disjoint), or one tenant's product over the threads
  if (todo.size() == 1) run(*todo[0], threads_);
  const int64_t n = todo.size() > 1 ? static_cast<int64_t>(todo.size()) : 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_) if (threads_ > 1 && n > 1)
  for (int64_t i = 0; i < n; ++i) run(*todo[i], 1);
}

void Engine::norm(float* out, const float* in, const float* base_w, std::vector<float> TenantLayer::*delta,
                  int64_t layer, int64_t C) {
  const float eps = static_cast<float>(base_.config.norm_eps);
  for (const Segment& s : segments_) {
    const float* w = base_w;
    if (s.tenant && layer >= 0 && !(s.tenant->layers[layer].*delta).empty())
      w = (s.tenant->layers[layer].*delta).data();
    if (s.tenant && layer < 0 && !s.tenant->norm.empty()) w = s.tenant->norm.data();
    k::rmsnorm_forward(out + s.begin * C, rstd_.data() + s.begin, in + s.begin * C, w, s.end - s.begin, C, eps);
  }
}

void Engine::step(std::vector<StepChunk>& chunks) {
  const LlamaConfig& c = base_.config;
  const ModelWeights& W = base_.w;
  const int64_t D = c.dim, F = c.hidden, Q = c.q_dim(), KV = c.kv_dim(), V = c.vocab, H = c.heads, KVH = c.kv_heads,
                hd = c.head_dim;
  // rows grouped by tenant: one segment per tenant
  std::vector<size_t> order(chunks.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::less<const Tenant*>()(chunks[a].seq->tenant.get(), chunks[b].seq->tenant.get());
  });
  tok_.clear(), pos_.clear(), seq_.clear(), segments_.clear();
  std::vector<int64_t> last_row(chunks.size());
  for (size_t i : order) {
    StepChunk& ch = chunks[i];
    const Tenant* t = ch.seq->tenant.get();
    const int64_t first = static_cast<int64_t>(tok_.size());
    if (segments_.empty() || segments_.back().tenant != t) segments_.push_back({t, first, first});
    for (size_t j = 0; j < ch.tokens.size(); ++j) {
      tok_.push_back(ch.tokens[j]);
      pos_.push_back(static_cast<int32_t>(ch.seq->pos + static_cast<int64_t>(j)));
      seq_.push_back(ch.seq);
    }
    segments_.back().end = static_cast<int64_t>(tok_.size());
    last_row[i] = static_cast<int64_t>(tok_.size()) - 1;
  }
  M_ = static_cast<int64_t>(tok_.size());
  if (M_ == 0) return;
  const int64_t M = M_;
  x_.resize(M * D), h_.resize(M * D), q_.resize(M * Q), k_.resize(M * KV), v_.resize(M * KV), o_.resize(M * Q);
  tmp_.resize(M * D), g_.resize(M * F), u_.resize(M * F), a_.resize(M * F), rstd_.resize(M);

  // embeddings: the base row plus the tenant's row of δ̂
  for (const Segment& s : segments_)
    for (int64_t m = s.begin; m < s.end; ++m) {
      std::copy_n(W.embed + tok_[m] * D, D, x_.data() + m * D);
      if (s.tenant && s.tenant->embed) {
        s.tenant->embed->decode_row(static_cast<uint64_t>(tok_[m]), tmp_.data());
        for (int64_t i = 0; i < D; ++i) x_[m * D + i] += tmp_[i];
      }
    }
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t l = 0; l < static_cast<int64_t>(c.layers); ++l) {
    const LayerWeights& L = W.layers[l];
    norm(h_.data(), x_.data(), L.attn_norm, &TenantLayer::attn_norm, l, D);
    linear(q_.data(), h_.data(), L.wq, nullptr, D, Q, &TenantLayer::q, l);
    linear(k_.data(), h_.data(), L.wk, nullptr, D, KV, &TenantLayer::k, l);
    linear(v_.data(), h_.data(), L.wv, nullptr, D, KV, &TenantLayer::v, l);
    if (c.qkv_bias)
      for (const Segment& s : segments_) {
        const TenantLayer* T = s.tenant ? &s.tenant->layers[l] : nullptr;
        const float* bq = T && !T->bq.empty() ? T->bq.data() : L.bq;
        const float* bk = T && !T->bk.empty() ? T->bk.data() : L.bk;
        const float* bv = T && !T->bv.empty() ? T->bv.data() : L.bv;
        for (int64_t m = s.begin; m < s.end; ++m) {
          for (int64_t i = 0; i < Q; ++i) q_[m * Q + i] += bq[i];
          for (int64_t i = 0; i < KV; ++i) k_[m * KV + i] += bk[i], v_[m * KV + i] += bv[i];
        }
      }
    k::rope_forward(q_.data(), pos_.data(), base_.rope_cos.data(), base_.rope_sin.data(), M, H, hd);
    k::rope_forward(k_.data(), pos_.data(), base_.rope_cos.data(), base_.rope_sin.data(), M, KVH, hd);
    // every row's key and value into its cache first: a prompt chunk's rows attend to each other
    for (int64_t m = 0; m < M; ++m) {
      Sequence* s = seq_[m];
      float* kc = s->k.data() + (l * s->capacity + pos_[m]) * KV;
      float* vc = s->v.data() + (l * s->capacity + pos_[m]) * KV;
      std::copy_n(k_.data() + m * KV, KV, kc);
      std::copy_n(v_.data() + m * KV, KV, vc);
    }
#pragma omp parallel for schedule(static) num_threads(threads_) if (threads_ > 1 && M > 1)
    for (int64_t m = 0; m < M; ++m) {
      const Sequence* s = seq_[m];
      const int64_t p = pos_[m];
      const float* kc = s->k.data() + l * s->capacity * KV;
      const float* vc = s->v.data() + l * s->capacity * KV;
      std::vector<float> sc(static_cast<size_t>(p + 1));
      for (int64_t hh = 0; hh < H; ++hh) {
        const int64_t kh = hh / (H / KVH);
        const float* qh = q_.data() + m * Q + hh * hd;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= p; ++j) {
          sc[j] = fixed_dot(qh, kc + j * KV + kh * hd, hd) * scale;
          mx = std::max(mx, sc[j]);
        }
        float sum = 0;
        for (int64_t j = 0; j <= p; ++j) sum += (sc[j] = std::exp(sc[j] - mx));
        float* oh = o_.data() + m * Q + hh * hd;
        std::fill(oh, oh + hd, 0.0f);
        for (int64_t j = 0; j <= p; ++j) {
          const float wgt = sc[j] / sum;
          for (int64_t i = 0; i < hd; ++i) oh[i] += wgt * vc[j * KV + kh * hd + i];
        }
      }
    }
    linear(tmp_.data(), o_.data(), L.wo, nullptr, Q, D, &TenantLayer::o, l);
    for (int64_t i = 0; i < M * D; ++i) x_[i] += tmp_[i];
    norm(h_.data(), x_.data(), L.mlp_norm, &TenantLayer::mlp_norm, l, D);
    linear(g_.data(), h_.data(), L.wg, nullptr, D, F, &TenantLayer::gate, l);
    linear(u_.data(), h_.data(), L.wu, nullptr, D, F, &TenantLayer::up, l);
    k::swiglu_forward(a_.data(), g_.data(), u_.data(), M * F);
    linear(tmp_.data(), a_.data(), L.wd, nullptr, F, D, &TenantLayer::down, l);
    for (int64_t i = 0; i < M * D; ++i) x_[i] += tmp_[i];
  }
  norm(h_.data(), x_.data(), W.norm, nullptr, -1, D);

  // logits only for the chunks that want them, a segment per tenant again
  std::vector<size_t> want;
  for (size_t i : order)
    if (chunks[i].want_logits) want.push_back(i);
  if (!want.empty()) {
    const int64_t R = static_cast<int64_t>(want.size());
    std::vector<float> hs(R * D), logits(R * V);
    for (int64_t r = 0; r < R; ++r) std::copy_n(h_.data() + last_row[want[r]] * D, D, hs.data() + r * D);
    invariant_gemm(logits.data(), hs.data(), W.lm_head, nullptr, R, D, V, threads_);
    for (int64_t r = 0; r < R;) {
      const Tenant* t = chunks[want[r]].seq->tenant.get();
      int64_t e = r;
      while (e < R && chunks[want[e]].seq->tenant.get() == t) ++e;
      const DeltaProduct* p =
          t ? (t->lm_head ? t->lm_head.get() : (c.tie_embeddings ? t->embed.get() : nullptr)) : nullptr;
      if (p) p->multiply_add(hs.data() + r * D, e - r, logits.data() + r * V, threads_);
      r = e;
    }
    for (int64_t r = 0; r < R; ++r) chunks[want[r]].logits.assign(logits.data() + r * V, logits.data() + (r + 1) * V);
  }
  for (StepChunk& ch : chunks) ch.seq->pos += static_cast<int64_t>(ch.tokens.size());
}

}  // namespace deltakit
