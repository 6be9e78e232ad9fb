// A Llama model's parameters as one flat fp32 vector with named slices in Hugging Face's names
// and order. Gradients and optimizer moments use the same layout, so an optimizer step is one
// loop over a vector and a checkpoint is one pass over the slices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/llama_config.h"

namespace deltakit {

struct ParamSlice {
  std::string name;  // e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<uint64_t> shape;
  uint64_t offset = 0, numel = 0;
  bool is_norm = false;
};

std::vector<ParamSlice> llama_param_layout(const LlamaConfig& c);

// Pointers into a buffer laid out by llama_param_layout (parameters or their gradients).
struct LayerWeights {
  float *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *mlp_norm, *wg, *wu, *wd;
};
struct ModelWeights {
  float* embed = nullptr;
  std::vector<LayerWeights> layers;
  float* norm = nullptr;
  float* lm_head = nullptr;  // == embed when tied
};

class LlamaParams {
 public:
  LlamaParams() = default;
  explicit LlamaParams(const LlamaConfig& c);  // zero-filled
  const LlamaConfig& config() const { return config_; }
  void set_storage_dtype(DType t) { config_.dtype = t; }
  const std::vector<ParamSlice>& slices() const { return slices_; }
  std::vector<float>& data() { return data_; }
  const std::vector<float>& data() const { return data_; }
  const ParamSlice* find(const std::string& name) const;
  ModelWeights bind() { return bind(data_.data()); }
  ModelWeights bind(float* base) const;  // another buffer of the same layout (gradients)
  // Pointers for read-only use (forward passes of a const model).
  ModelWeights view() const { return bind(const_cast<float*>(data_.data())); }

  // The usual initialisation: N(0, 0.02) matrices, output projections scaled by 1/sqrt(2·layers)
  // (GPT-2), norms 1, biases 0; from the counter RNG, so a seed gives the same weights anywhere.
  void init_random(uint64_t seed);

 private:
  LlamaConfig config_;
  std::vector<ParamSlice> slices_;
  std::vector<float> data_;
};

// Load DIR (config.json + safetensors, any float dtype) into fp32. Every expected tensor must be
// present with its shape; extra tensors other than rotary caches (and lm_head of a tied model)
// are refused, naming the file.
LlamaParams load_llama(const std::string& dir);

// Two checkpoints to be compared or combined tensor by tensor: b must hold a's tensors, same names
// and shapes, in the same order, else Error(ShapeMismatch) naming b_dir: "has other shapes than
// <than>".
void require_same_layout(const LlamaParams& a, const LlamaParams& b, const std::string& b_dir, const std::string& than);

// Write an HF-layout checkpoint folder atomically: safetensors in `dtype` (shards over
// max_shard_bytes), config.json, generation_config.json, and `extra_files` (name -> contents).
void save_llama(const LlamaParams& p, const std::string& dir, DType dtype, bool overwrite,
                const std::vector<std::pair<std::string, std::string>>& extra_files = {}, uint64_t max_shard_bytes = 0);

}  // namespace deltakit
