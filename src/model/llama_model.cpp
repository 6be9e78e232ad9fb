#include "src/model/llama_model.h"

#include <algorithm>
#include <cmath>

#include "src/model/kernels.h"
#include "src/core/error.h"

namespace deltakit {

namespace k = kernels;

namespace {
void add_into(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}
void zero(std::vector<float>& v) { std::fill(v.begin(), v.end(), 0.0f); }
}  // namespace

LlamaModel::LlamaModel(const LlamaConfig& c) : config_(c) {
  const int64_t half = static_cast<int64_t>(c.head_dim / 2);
  rope_cos_.resize(c.max_seq * half);
  rope_sin_.resize(c.max_seq * half);
  k::rope_tables(rope_cos_.data(), rope_sin_.data(), static_cast<int64_t>(c.max_seq), static_cast<int64_t>(c.head_dim),
                 c.rope_theta);
}

void LlamaModel::reserve(int64_t B, int64_t T) {
  if (B == B_ && T == T_) return;
  if (T > static_cast<int64_t>(config_.max_seq))
    throw Error(ErrorCode::InvalidValue, "", "sequence length " + std::to_string(T) + " exceeds the model's context of " +
                                std::to_string(config_.max_seq));
  B_ = B, T_ = T;
  const auto M = static_cast<size_t>(B * T), D = config_.dim, F = config_.hidden, Q = config_.q_dim(),
             KV = config_.kv_dim();
  acts_.assign(config_.layers, {});
  for (auto& a : acts_) {
    a.x_in.resize(M * D), a.rstd1.resize(M), a.h1.resize(M * D), a.q.resize(M * Q), a.k.resize(M * KV);
    a.v.resize(M * KV), a.att.resize(static_cast<size_t>(B) * config_.heads * T * T), a.o.resize(M * Q);
    a.x_mid.resize(M * D), a.rstd2.resize(M), a.h2.resize(M * D), a.g.resize(M * F), a.u.resize(M * F);
    a.a.resize(M * F);
  }
  x_out_.resize(M * D), rstdf_.resize(M), hf_.resize(M * D), probs_.resize(M * config_.vocab), losses_.resize(M);
  dx_.resize(M * D), dh_.resize(M * D), dq_.resize(M * Q), dk_.resize(M * KV), dv_.resize(M * KV);
  do_.resize(M * Q), dg_.resize(M * F), du_.resize(M * F), da_.resize(M * F), dlogits_.resize(M * config_.vocab);
  tokens_.resize(M), targets_.resize(M), pos_.resize(M);
}

float LlamaModel::forward(const ModelWeights& w, const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T) {
  reserve(B, T);
  const int64_t M = B * T, V = config_.vocab;
  for (int64_t m = 0; m < M; ++m) {
    if (targets[m] >= V)
      throw Error(ErrorCode::InvalidValue, "", "token id " + std::to_string(targets[m]) + " is outside the model's vocabulary of " +
                                  std::to_string(V));
    targets_[m] = targets[m];
  }
  forward_logits(w, tokens, B, T);
  counted_ = k::crossentropy_forward(losses_.data(), probs_.data(), targets_.data(), M, V);
  double sum = 0;
  for (int64_t m = 0; m < M; ++m) sum += losses_[m];
  return counted_ ? static_cast<float>(sum / static_cast<double>(counted_)) : 0.0f;
}

const float* LlamaModel::forward_logits(const ModelWeights& w, const int32_t* tokens, int64_t B, int64_t T) {
  reserve(B, T);
  const int64_t M = B * T, D = config_.dim, F = config_.hidden, Q = config_.q_dim(), KV = config_.kv_dim(),
                V = config_.vocab, H = config_.heads, KVH = config_.kv_heads, hd = config_.head_dim;
  const float eps = static_cast<float>(config_.norm_eps);
  counted_ = 0;  // no loss until forward() takes one
  for (int64_t m = 0; m < M; ++m) {
    if (tokens[m] < 0 || tokens[m] >= V)
      throw Error(ErrorCode::InvalidValue, "", "token id " + std::to_string(tokens[m]) + " is outside the model's vocabulary of " +
                                  std::to_string(V));
    tokens_[m] = tokens[m], pos_[m] = static_cast<int32_t>(m % T);
  }
  for (int64_t m = 0; m < M; ++m) std::copy_n(w.embed + tokens_[m] * D, D, acts_[0].x_in.data() + m * D);
  for (size_t l = 0; l < acts_.size(); ++l) {
    LayerActs& A = acts_[l];
    const LayerWeights& L = w.layers[l];
    k::rmsnorm_forward(A.h1.data(), A.rstd1.data(), A.x_in.data(), L.attn_norm, M, D, eps);
    k::matmul_forward(A.q.data(), A.h1.data(), L.wq, L.bq, M, D, Q);
    k::matmul_forward(A.k.data(), A.h1.data(), L.wk, L.bk, M, D, KV);
    k::matmul_forward(A.v.data(), A.h1.data(), L.wv, L.bv, M, D, KV);
    k::rope_forward(A.q.data(), pos_.data(), rope_cos_.data(), rope_sin_.data(), M, H, hd);
    k::rope_forward(A.k.data(), pos_.data(), rope_cos_.data(), rope_sin_.data(), M, KVH, hd);
    k::attention_forward(A.o.data(), A.att.data(), A.q.data(), A.k.data(), A.v.data(), B, T, H, KVH, hd);
    k::matmul_forward(A.x_mid.data(), A.o.data(), L.wo, nullptr, M, Q, D);
    add_into(A.x_mid.data(), A.x_in.data(), M * D);
    k::rmsnorm_forward(A.h2.data(), A.rstd2.data(), A.x_mid.data(), L.mlp_norm, M, D, eps);
    k::matmul_forward(A.g.data(), A.h2.data(), L.wg, nullptr, M, D, F);
    k::matmul_forward(A.u.data(), A.h2.data(), L.wu, nullptr, M, D, F);
    k::swiglu_forward(A.a.data(), A.g.data(), A.u.data(), M * F);
    float* next = l + 1 < acts_.size() ? acts_[l + 1].x_in.data() : x_out_.data();
    k::matmul_forward(next, A.a.data(), L.wd, nullptr, M, F, D);
    add_into(next, A.x_mid.data(), M * D);
  }
  k::rmsnorm_forward(hf_.data(), rstdf_.data(), x_out_.data(), w.norm, M, D, eps);
  k::matmul_forward(probs_.data(), hf_.data(), w.lm_head, nullptr, M, D, V);
  return probs_.data();
}

void LlamaModel::backward(const ModelWeights& w, const ModelWeights& g, float loss_scale) {
  if (!B_) throw std::logic_error("backward() before forward()");
  if (!counted_) return;
  k::crossentropy_backward(dlogits_.data(), probs_.data(), targets_.data(), B_ * T_, config_.vocab,
                           loss_scale / static_cast<float>(counted_));
  backward_from_logits(w, g, dlogits_.data());
}

void LlamaModel::backward_from_logits(const ModelWeights& w, const ModelWeights& g, const float* dlogits) {
  if (!B_) throw std::logic_error("backward() before forward()");
  const int64_t B = B_, T = T_, M = B * T, D = config_.dim, F = config_.hidden, Q = config_.q_dim(),
                KV = config_.kv_dim(), V = config_.vocab, H = config_.heads, KVH = config_.kv_heads,
                hd = config_.head_dim;
  zero(dh_);
  k::matmul_backward(dh_.data(), g.lm_head, nullptr, dlogits, hf_.data(), w.lm_head, M, D, V);
  zero(dx_);
  k::rmsnorm_backward(dx_.data(), g.norm, dh_.data(), x_out_.data(), w.norm, rstdf_.data(), M, D);
  for (size_t l = acts_.size(); l-- > 0;) {
    LayerActs& A = acts_[l];
    const LayerWeights &L = w.layers[l], &G = g.layers[l];
    // out = x_mid + a·Wdᵀ: dx flows to x_mid unchanged, and through the MLP
    zero(da_);
    k::matmul_backward(da_.data(), G.wd, nullptr, dx_.data(), A.a.data(), L.wd, M, F, D);
    k::swiglu_backward(dg_.data(), du_.data(), da_.data(), A.g.data(), A.u.data(), M * F);
    zero(dh_);
    k::matmul_backward(dh_.data(), G.wg, nullptr, dg_.data(), A.h2.data(), L.wg, M, D, F);
    k::matmul_backward(dh_.data(), G.wu, nullptr, du_.data(), A.h2.data(), L.wu, M, D, F);
    k::rmsnorm_backward(dx_.data(), G.mlp_norm, dh_.data(), A.x_mid.data(), L.mlp_norm, A.rstd2.data(), M, D);
    // x_mid = x_in + o·Woᵀ
    zero(do_);
    k::matmul_backward(do_.data(), G.wo, nullptr, dx_.data(), A.o.data(), L.wo, M, Q, D);
    k::attention_backward(dq_.data(), dk_.data(), dv_.data(), do_.data(), A.att.data(), A.q.data(), A.k.data(),
                          A.v.data(), B, T, H, KVH, hd);
    k::rope_backward(dq_.data(), pos_.data(), rope_cos_.data(), rope_sin_.data(), M, H, hd);
    k::rope_backward(dk_.data(), pos_.data(), rope_cos_.data(), rope_sin_.data(), M, KVH, hd);
    zero(dh_);
    k::matmul_backward(dh_.data(), G.wq, G.bq, dq_.data(), A.h1.data(), L.wq, M, D, Q);
    k::matmul_backward(dh_.data(), G.wk, G.bk, dk_.data(), A.h1.data(), L.wk, M, D, KV);
    k::matmul_backward(dh_.data(), G.wv, G.bv, dv_.data(), A.h1.data(), L.wv, M, D, KV);
    k::rmsnorm_backward(dx_.data(), G.attn_norm, dh_.data(), A.x_in.data(), L.attn_norm, A.rstd1.data(), M, D);
  }
  for (int64_t m = 0; m < M; ++m) add_into(g.embed + tokens_[m] * D, dx_.data() + m * D, D);
}

GenerateResult generate_greedy(const LlamaConfig& c, const ModelWeights& w,
                               const std::vector<std::vector<int32_t>>& prompts, int64_t max_new, int32_t stop) {
  const int64_t S = static_cast<int64_t>(prompts.size()), D = c.dim, F = c.hidden, Q = c.q_dim(), KV = c.kv_dim(),
                V = c.vocab, H = c.heads, KVH = c.kv_heads, hd = c.head_dim, Lyr = c.layers;
  const int64_t cap = static_cast<int64_t>(c.max_seq);
  const float eps = static_cast<float>(c.norm_eps);
  std::vector<float> rc(cap * (hd / 2)), rs(cap * (hd / 2));
  k::rope_tables(rc.data(), rs.data(), cap, hd, c.rope_theta);
  std::vector<float> kcache(static_cast<size_t>(Lyr * S * cap * KV)), vcache(kcache.size());
  std::vector<int64_t> pos(S, 0);
  std::vector<int32_t> last(S, 0);
  std::vector<char> done(S, 0);
  GenerateResult r;
  r.tokens.resize(S);
  for (int64_t s = 0; s < S; ++s) {
    if (prompts[s].empty()) throw Error(ErrorCode::InvalidValue, "", "generate_greedy: an empty prompt");
    for (int32_t t : prompts[s])
      if (t < 0 || t >= V) throw Error(ErrorCode::InvalidValue, "", "generate_greedy: a prompt token is outside the vocabulary");
    if (static_cast<int64_t>(prompts[s].size()) >= cap) done[s] = 1;
  }
  std::vector<float> x, h, q, kk, vv, o, tmp, g, u, a, logits, rstd;
  std::vector<int32_t> tok, ps;
  std::vector<int64_t> rows;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (;;) {
    rows.clear();
    for (int64_t s = 0; s < S; ++s)
      if (!done[s]) rows.push_back(s);
    if (rows.empty()) break;
    const int64_t M = static_cast<int64_t>(rows.size());
    tok.resize(M), ps.resize(M);
    for (int64_t m = 0; m < M; ++m) {
      const int64_t s = rows[m], plen = static_cast<int64_t>(prompts[s].size());
      tok[m] = pos[s] < plen ? prompts[s][pos[s]] : last[s];
      ps[m] = static_cast<int32_t>(pos[s]);
    }
    x.resize(M * D), h.resize(M * D), q.resize(M * Q), kk.resize(M * KV), vv.resize(M * KV), o.resize(M * Q);
    tmp.resize(M * D), g.resize(M * F), u.resize(M * F), a.resize(M * F), logits.resize(M * V), rstd.resize(M);
    for (int64_t m = 0; m < M; ++m) std::copy_n(w.embed + tok[m] * D, D, x.data() + m * D);
    for (int64_t l = 0; l < Lyr; ++l) {
      const LayerWeights& L = w.layers[l];
      k::rmsnorm_forward(h.data(), rstd.data(), x.data(), L.attn_norm, M, D, eps);
      k::matmul_forward(q.data(), h.data(), L.wq, L.bq, M, D, Q);
      k::matmul_forward(kk.data(), h.data(), L.wk, L.bk, M, D, KV);
      k::matmul_forward(vv.data(), h.data(), L.wv, L.bv, M, D, KV);
      k::rope_forward(q.data(), ps.data(), rc.data(), rs.data(), M, H, hd);
      k::rope_forward(kk.data(), ps.data(), rc.data(), rs.data(), M, KVH, hd);
#pragma omp parallel for schedule(static) num_threads(k::threads()) if (M > 1)
      for (int64_t m = 0; m < M; ++m) {
        const int64_t s = rows[m], p = ps[m];
        float* kc = kcache.data() + ((l * S + s) * cap) * KV;
        float* vc = vcache.data() + ((l * S + s) * cap) * KV;
        std::copy_n(kk.data() + m * KV, KV, kc + p * KV);
        std::copy_n(vv.data() + m * KV, KV, vc + p * KV);
        std::vector<float> sc(static_cast<size_t>(p + 1));
        for (int64_t hh = 0; hh < H; ++hh) {
          const int64_t kh = hh / (H / KVH);
          const float* qh = q.data() + m * Q + hh * hd;
          float mx = -INFINITY;
          for (int64_t j = 0; j <= p; ++j) {
            float d = 0;
            for (int64_t i = 0; i < hd; ++i) d += qh[i] * kc[j * KV + kh * hd + i];
            sc[j] = d * scale;
            mx = std::max(mx, sc[j]);
          }
          float sum = 0;
          for (int64_t j = 0; j <= p; ++j) sum += (sc[j] = std::exp(sc[j] - mx));
          float* oh = o.data() + m * Q + hh * hd;
          std::fill(oh, oh + hd, 0.0f);
          for (int64_t j = 0; j <= p; ++j)
            for (int64_t i = 0; i < hd; ++i) oh[i] += sc[j] / sum * vc[j * KV + kh * hd + i];
        }
      }
      k::matmul_forward(tmp.data(), o.data(), L.wo, nullptr, M, Q, D);
      add_into(x.data(), tmp.data(), M * D);
      k::rmsnorm_forward(h.data(), rstd.data(), x.data(), L.mlp_norm, M, D, eps);
      k::matmul_forward(g.data(), h.data(), L.wg, nullptr, M, D, F);
      k::matmul_forward(u.data(), h.data(), L.wu, nullptr, M, D, F);
      k::swiglu_forward(a.data(), g.data(), u.data(), M * F);
      k::matmul_forward(tmp.data(), a.data(), L.wd, nullptr, M, F, D);
      add_into(x.data(), tmp.data(), M * D);
    }
    k::rmsnorm_forward(h.data(), rstd.data(), x.data(), w.norm, M, D, eps);
    k::matmul_forward(logits.data(), h.data(), w.lm_head, nullptr, M, D, V);
    for (int64_t m = 0; m < M; ++m) {
      const int64_t s = rows[m];
      ++pos[s];
      if (pos[s] < static_cast<int64_t>(prompts[s].size())) continue;
      const float* lg = logits.data() + m * V;
      const int32_t next = static_cast<int32_t>(std::max_element(lg, lg + V) - lg);  // first max: ties to lowest id
      if (next == stop || static_cast<int64_t>(r.tokens[s].size()) >= max_new || pos[s] >= cap) {
        done[s] = 1;
        continue;
      }
      r.tokens[s].push_back(next);
      last[s] = next;
      if (static_cast<int64_t>(r.tokens[s].size()) >= max_new) done[s] = 1;
    }
  }
  return r;
}

}  // namespace deltakit
