// Forward and backward of a Llama decoder over a batch of B sequences of T tokens (teacher
// forcing), with every activation the backward needs kept in a reusable workspace. Loss is the
// mean next-token cross-entropy over positions whose target is >= 0 (-1 masks a position, e.g.
// a prompt in supervised fine-tuning).
#pragma once

#include <cstdint>
#include <vector>

#include "src/model/llama_params.h"

namespace deltakit {

class LlamaModel {
 public:
  explicit LlamaModel(const LlamaConfig& c);
  const LlamaConfig& config() const { return config_; }

  // tokens, targets: [B*T]. Returns the mean loss (0 if no target). Keeps activations for
  // backward() and the probabilities for probs().
  float forward(const ModelWeights& w, const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T);
  // Accumulates d(mean loss)/dθ · loss_scale into `grads` (same layout as the weights).
  void backward(const ModelWeights& w, const ModelWeights& grads, float loss_scale = 1.0f);

  // The logits [B*T, vocab] alone (no loss), for losses taken outside (distillation); valid
  // until the next forward. backward_from_logits then accumulates dL/dθ into `grads` from a
  // given dL/dlogits [B*T, vocab].
  const float* forward_logits(const ModelWeights& w, const int32_t* tokens, int64_t B, int64_t T);
  void backward_from_logits(const ModelWeights& w, const ModelWeights& grads, const float* dlogits);

  // After forward: next-token probabilities [B*T, vocab], and each position's loss (0 if masked).
  const float* probs() const { return probs_.data(); }
  const std::vector<float>& losses() const { return losses_; }
  int64_t counted() const { return counted_; }
  // After forward: the input of each linear map of layer l, [B*T, in_features] row-major —
  // q/k/v_proj read `attn`, o_proj `attn_out`, gate/up_proj `mlp`, down_proj `mlp_act` — and the
  // final hidden state lm_head reads.
  struct LinearInputs {
    const float *attn, *attn_out, *mlp, *mlp_act;
  };
  LinearInputs linear_inputs(size_t l) const {
    const LayerActs& a = acts_.at(l);
    return {a.h1.data(), a.o.data(), a.h2.data(), a.a.data()};
  }
  const float* head_input() const { return hf_.data(); }

 private:
  struct LayerActs {
    std::vector<float> x_in, rstd1, h1, q, k, v, att, o, x_mid, rstd2, h2, g, u, a;
  };
  void reserve(int64_t B, int64_t T);

  LlamaConfig config_;
  std::vector<float> rope_cos_, rope_sin_;
  int64_t B_ = 0, T_ = 0, counted_ = 0;
  std::vector<int32_t> tokens_, targets_, pos_;
  std::vector<LayerActs> acts_;
  std::vector<float> x_out_, rstdf_, hf_, probs_, losses_;
  // backward scratch
  std::vector<float> dx_, dh_, dq_, dk_, dv_, do_, dg_, du_, da_, dlogits_;
};

// Greedy generation with a KV cache for a batch of independent sequences, each at its own
// position: every step feeds one token per active sequence (its next prompt token, or the model's
// argmax once the prompt is used up) and stops a sequence at `stop` or after max_new tokens.
struct GenerateResult {
  std::vector<std::vector<int32_t>> tokens;  // generated tokens per prompt (without `stop`)
};
GenerateResult generate_greedy(const LlamaConfig& c, const ModelWeights& w,
                               const std::vector<std::vector<int32_t>>& prompts, int64_t max_new, int32_t stop);

}  // namespace deltakit
