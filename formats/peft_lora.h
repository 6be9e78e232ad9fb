// PEFT LoRA adapters: a folder with adapter_config.json and adapter_model.safetensors, the format
// PEFT, vLLM, LoRAX and llama.cpp load (docs/formats.md, "PEFT LoRA").
//
//   base_model.model.<module>.lora_A.weight      [r, in]       linear maps (nn.Linear)
//   base_model.model.<module>.lora_B.weight      [out, r]
//   base_model.model.<module>.lora_embedding_A   [r, vocab]    embeddings (no ".weight")
//   base_model.model.<module>.lora_embedding_B   [dim, r]
//
// The base tensor is <module>.weight. Its delta is scale·B·A for a linear map ([out, in]; the
// transpose when fan_in_fan_out, GPT-2's Conv1D storing [in, out]) and scale·(B·A)ᵀ for an
// embedding ([vocab, dim]), with scale = alpha / r (alpha / √r with use_rslora). A module's r and
// alpha are the config's, or rank_pattern's / alpha_pattern's where a key matches the module
// name as PEFT matches it (the regex "(.*\.)?(KEY)$").
//
// Opening validates before any factor is read: the config's fields and types; every tensor's
// name, dtype and shape; A and B present in pairs with a shared r that agrees with the config;
// every module covered by target_modules. DoRA, modules_to_save and LoRA biases are refused by
// name: deltakit carries no full-rank copies inside a LoRA.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/safetensors.h"

namespace deltakit {

constexpr const char* kLoraConfigName = "adapter_config.json";
constexpr const char* kLoraWeightsName = "adapter_model.safetensors";

// True for a folder holding adapter_config.json (the caller then opens it as a PeftLora).
bool is_peft_lora_folder(const std::string& path);

struct PeftLoraConfig {
  uint64_t r = 0;
  double lora_alpha = 0;
  bool use_rslora = false, fan_in_fan_out = false;
  std::vector<std::string> target_modules;  // names or suffixes...
  std::string target_regex;                 // ...or one regex (a string in the config)
  std::map<std::string, uint64_t> rank_pattern;
  std::map<std::string, double> alpha_pattern;
  std::string base_model_name_or_path;
};

struct LoraModule {
  std::string module;  // "model.layers.0.self_attn.q_proj"; its base tensor is module + ".weight"
  bool embedding = false;
  uint64_t r = 0;
  double alpha = 0, scale = 0;
  const SafetensorsEntry* a = nullptr;  // [r, in] (embedding: [r, vocab])
  const SafetensorsEntry* b = nullptr;  // [out, r] (embedding: [dim, r])
  // The shape of the base tensor this module changes.
  std::vector<uint64_t> target_shape(bool fan_in_fan_out) const;
};

class PeftLora {
 public:
  explicit PeftLora(const std::string& folder);
  const std::string& path() const { return folder_; }
  const PeftLoraConfig& config() const { return config_; }
  const std::vector<LoraModule>& modules() const { return modules_; }
  // The module whose base tensor is `tensor_name`, or nullptr.
  const LoraModule* module_for(const std::string& tensor_name) const;
  // A factor's values as fp32 (F32, F16 or BF16 stored), every one finite (else AdapterInvalid).
  std::vector<float> factor(const SafetensorsEntry& e) const;
  // Every targeted base tensor exists with the shape the factors imply (one line per problem).
  void check_against_base(const Checkpoint& base) const;

 private:
  std::string folder_;
  PeftLoraConfig config_;
  std::unique_ptr<SafetensorsFile> weights_;
  std::vector<LoraModule> modules_;
  std::map<std::string, size_t> by_tensor_;
};

// Parse and validate adapter_config.json's text (`where` names it in errors).
PeftLoraConfig parse_peft_lora_config(const std::string& text, const std::string& where);

// PEFT's pattern match: the first key K (in map order) with "(.*\.)?(K)$" matching `module` whole.
const std::string* match_lora_pattern(const std::vector<std::string>& keys, const std::string& module,
                                      const std::string& where);

// One factor to write: name, dtype and shape, and its values in that dtype's bytes.
struct LoraTensor {
  TensorSpec spec;
  std::vector<uint8_t> bytes;
};

// Write a PEFT LoRA folder (config, weights and a README card) at `out`, atomically: a folder
// that is complete or absent. Tensors are written in the given order.
void write_peft_lora(const std::string& out, const nlohmann::json& config, const std::vector<LoraTensor>& tensors,
                     const std::string& card);

}  // namespace deltakit
