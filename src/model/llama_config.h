// The shape of a Llama-family decoder, as Hugging Face's config.json names it (LlamaConfig,
// Qwen2Config): hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// num_key_value_heads, head_dim, vocab_size, max_position_embeddings, rms_norm_eps, rope_theta,
// tie_word_embeddings, attention_bias.
#pragma once

#include <cstdint>
#include <string>

#include "src/core/dtype.h"

namespace deltakit {

struct LlamaConfig {
  uint64_t vocab = 260, dim = 128, hidden = 352, layers = 4, heads = 4, kv_heads = 2, head_dim = 32;
  uint64_t max_seq = 128;
  double rope_theta = 10000.0, norm_eps = 1e-5;
  bool tie_embeddings = false;
  bool qkv_bias = false;  // Qwen2: biases on q/k/v projections
  DType dtype = DType::F32;  // storage dtype of the checkpoint (compute is fp32)
  int64_t bos_id = -1, eos_id = -1;

  uint64_t q_dim() const { return heads * head_dim; }
  uint64_t kv_dim() const { return kv_heads * head_dim; }
  // Throws Error(Usage) naming `where` if the shape is inconsistent (heads not dividing, ...).
  void validate(const std::string& where) const;
};

// Reads DIR/config.json (or a config.json path). Error naming the file on anything missing,
// of the wrong type, or out of range; unknown model types (not llama/qwen2/mistral) are refused.
LlamaConfig read_llama_config(const std::string& dir_or_file);
// A config.json Hugging Face transformers loads as LlamaForCausalLM (or Qwen2 when qkv_bias).
std::string llama_config_json(const LlamaConfig& c);

}  // namespace deltakit
