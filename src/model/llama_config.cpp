#include "src/model/llama_config.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "src/core/error.h"
#include "src/core/whole_file.h"

namespace deltakit {

void LlamaConfig::validate(const std::string& where) const {
  auto bad = [&](const std::string& what) { throw Error(ErrorCode::Usage, where, what); };
  if (!vocab || !dim || !hidden || !layers || !heads || !kv_heads || !head_dim || !max_seq)
    bad("a model dimension is zero");
  if (heads % kv_heads) bad("num_attention_heads is not a multiple of num_key_value_heads");
  if (head_dim % 2) bad("head_dim must be even for rotary embeddings");
  if (dim > (1u << 20) || hidden > (1u << 22) || vocab > (1u << 24) || layers > 1024 || max_seq > (1u << 20) ||
      heads > 4096 || head_dim > 4096)
    bad("a model dimension is out of range");
  if (!(rope_theta > 0) || !(norm_eps > 0)) bad("rope_theta and rms_norm_eps must be positive");
}

LlamaConfig read_llama_config(const std::string& dir_or_file) {
  namespace fs = std::filesystem;
  const std::string path = fs::is_directory(dir_or_file) ? (fs::path(dir_or_file) / "config.json").string() : dir_or_file;
  nlohmann::json j = nlohmann::json::parse(read_whole_file(path, "model's config.json"), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(ErrorCode::HeaderNotJson, path, "not a JSON object");
  auto need = [&](const char* key) -> uint64_t {
    if (!j.contains(key) || !j[key].is_number_unsigned())
      throw Error(ErrorCode::Usage, path, std::string("\"") + key + "\" missing or not a non-negative integer");
    return j[key].get<uint64_t>();
  };
  auto number = [&](const char* key, double fallback) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number()) throw Error(ErrorCode::Usage, path, std::string("\"") + key + "\" is not a number");
    return j[key].get<double>();
  };
  auto flag = [&](const char* key, bool fallback) {
    if (!j.contains(key)) return fallback;
    if (!j[key].is_boolean()) throw Error(ErrorCode::Usage, path, std::string("\"") + key + "\" is not true/false");
    return j[key].get<bool>();
  };
  // a text field: absent means the default; anything but a string is refused, naming the file
  auto text = [&](const char* key, const char* fallback) {
    if (!j.contains(key) || j[key].is_null()) return std::string(fallback);
    if (!j[key].is_string()) throw Error(ErrorCode::Usage, path, std::string("\"") + key + "\" is not a string");
    return j[key].get<std::string>();
  };
  const std::string type = text("model_type", "llama");
  if (type != "llama" && type != "qwen2" && type != "mistral")
    throw Error(ErrorCode::Usage, path, "model_type \"" + type + "\" is not a Llama-family decoder (llama, qwen2, mistral)");
  LlamaConfig c;
  c.dim = need("hidden_size");
  c.hidden = need("intermediate_size");
  c.layers = need("num_hidden_layers");
  c.heads = need("num_attention_heads");
  c.kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null() ? need("num_key_value_heads") : c.heads;
  c.vocab = need("vocab_size");
  c.max_seq = j.contains("max_position_embeddings") ? need("max_position_embeddings") : 2048;
  if (c.heads == 0) throw Error(ErrorCode::Usage, path, "num_attention_heads is zero");
  c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? need("head_dim") : c.dim / c.heads;
  c.rope_theta = number("rope_theta", 10000.0);
  c.norm_eps = number("rms_norm_eps", 1e-6);
  c.tie_embeddings = flag("tie_word_embeddings", false);
  c.qkv_bias = type == "qwen2" ? true : flag("attention_bias", false);
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw Error(ErrorCode::Usage, path, "hidden_act must be \"silu\" (SwiGLU)");
  const std::string td = text("torch_dtype", "float32");
  c.dtype = td == "bfloat16" ? DType::BF16 : td == "float16" ? DType::F16 : DType::F32;
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer()) c.bos_id = j["bos_token_id"].get<int64_t>();
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer()) c.eos_id = j["eos_token_id"].get<int64_t>();
  c.validate(path);
  return c;
}

std::string llama_config_json(const LlamaConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = c.qkv_bias ? "qwen2" : "llama";
  j["hidden_size"] = c.dim;
  j["intermediate_size"] = c.hidden;
  j["num_hidden_layers"] = c.layers;
  j["num_attention_heads"] = c.heads;
  j["num_key_value_heads"] = c.kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab;
  j["max_position_embeddings"] = c.max_seq;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["attention_bias"] = c.qkv_bias;
  j["tie_word_embeddings"] = c.tie_embeddings;
  j["torch_dtype"] = c.dtype == DType::BF16 ? "bfloat16" : c.dtype == DType::F16 ? "float16" : "float32";
  if (c.bos_id >= 0) j["bos_token_id"] = c.bos_id;
  if (c.eos_id >= 0) j["eos_token_id"] = c.eos_id;
  return j.dump(2) + "\n";
}

}  // namespace deltakit
