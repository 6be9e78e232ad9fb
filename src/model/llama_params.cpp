#include "src/model/llama_params.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "formats/checkpoint.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/philox.h"
#include "src/core/tensor_view.h"

namespace deltakit {

std::vector<ParamSlice> llama_param_layout(const LlamaConfig& c) {
  std::vector<ParamSlice> s;
  uint64_t offset = 0;
  auto add = [&](std::string name, std::vector<uint64_t> shape, bool norm = false) {
    uint64_t n = 1;
    for (auto d : shape) n *= d;
    s.push_back({std::move(name), std::move(shape), offset, n, norm});
    offset += n;
  };
  add("model.embed_tokens.weight", {c.vocab, c.dim});
  for (uint64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {c.dim}, true);
    add(p + "self_attn.q_proj.weight", {c.q_dim(), c.dim});
    if (c.qkv_bias) add(p + "self_attn.q_proj.bias", {c.q_dim()});
    add(p + "self_attn.k_proj.weight", {c.kv_dim(), c.dim});
    if (c.qkv_bias) add(p + "self_attn.k_proj.bias", {c.kv_dim()});
    add(p + "self_attn.v_proj.weight", {c.kv_dim(), c.dim});
    if (c.qkv_bias) add(p + "self_attn.v_proj.bias", {c.kv_dim()});
    add(p + "self_attn.o_proj.weight", {c.dim, c.q_dim()});
    add(p + "post_attention_layernorm.weight", {c.dim}, true);
    add(p + "mlp.gate_proj.weight", {c.hidden, c.dim});
    add(p + "mlp.up_proj.weight", {c.hidden, c.dim});
    add(p + "mlp.down_proj.weight", {c.dim, c.hidden});
  }
  add("model.norm.weight", {c.dim}, true);
  if (!c.tie_embeddings) add("lm_head.weight", {c.vocab, c.dim});
  return s;
}

LlamaParams::LlamaParams(const LlamaConfig& c) : config_(c), slices_(llama_param_layout(c)) {
  data_.assign(slices_.back().offset + slices_.back().numel, 0.0f);
}

const ParamSlice* LlamaParams::find(const std::string& name) const {
  for (const auto& s : slices_)
    if (s.name == name) return &s;
  return nullptr;
}

ModelWeights LlamaParams::bind(float* base) const {
  std::map<std::string, float*> at;
  for (const auto& s : slices_) at[s.name] = base + s.offset;
  auto get = [&](const std::string& n) -> float* {
    auto it = at.find(n);
    return it == at.end() ? nullptr : it->second;
  };
  ModelWeights w;
  w.embed = get("model.embed_tokens.weight");
  for (uint64_t l = 0; l < config_.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.layers.push_back(
        {get(p + "input_layernorm.weight"), get(p + "self_attn.q_proj.weight"), get(p + "self_attn.k_proj.weight"),
         get(p + "self_attn.v_proj.weight"), get(p + "self_attn.o_proj.weight"), get(p + "self_attn.q_proj.bias"),
         get(p + "self_attn.k_proj.bias"), get(p + "self_attn.v_proj.bias"), get(p + "post_attention_layernorm.weight"),
         get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight"), get(p + "mlp.down_proj.weight")});
  }
  w.norm = get("model.norm.weight");
  w.lm_head = config_.tie_embeddings ? w.embed : get("lm_head.weight");
  return w;
}

void LlamaParams::init_random(uint64_t seed) {
  const float out_scale = 1.0f / std::sqrt(2.0f * static_cast<float>(config_.layers));
  for (const auto& s : slices_) {
    float* p = data_.data() + s.offset;
    if (s.is_norm) {
      std::fill(p, p + s.numel, 1.0f);
      continue;
    }
    if (s.shape.size() == 1) {  // biases
      std::fill(p, p + s.numel, 0.0f);
      continue;
    }
    const bool residual_out = s.name.ends_with("o_proj.weight") || s.name.ends_with("down_proj.weight");
    const float std = 0.02f * (residual_out ? out_scale : 1.0f);
    TensorRng rng(seed, s.name);
    for (uint64_t i = 0; i < s.numel; ++i) p[i] = std * rng.normal(i);
  }
}

LlamaParams load_llama(const std::string& dir) {
  LlamaConfig c = read_llama_config(dir);
  Checkpoint ck(dir);
  // every name, shape and dtype checked against config.json's layout before a byte is allocated:
  // a config claiming a huge vocabulary is refused by its shapes, not by running out of memory
  const std::vector<ParamSlice> layout = llama_param_layout(c);
  std::map<std::string, const ParamSlice*> expected;
  for (const auto& s : layout) expected[s.name] = &s;
  std::vector<std::pair<std::string, const ParamSlice*>> to_read;
  for (const auto& name : ck.names()) {
    auto it = expected.find(name);
    if (it == expected.end()) {
      if (name.ends_with("rotary_emb.inv_freq") || (c.tie_embeddings && name == "lm_head.weight")) continue;
      throw Error(ErrorCode::TensorSetMismatch, ck.shard_of(name),
                  "tensor '" + name + "' is not part of a " + std::to_string(c.layers) + "-layer Llama model");
    }
    const ParamSlice& s = *it->second;
    const auto& loc = ck.at(name);
    if (loc.entry->shape != s.shape)
      throw Error(ErrorCode::ShapeMismatch, loc.file->path(),
                  "tensor '" + name + "' has shape " + shape_string(loc.entry->shape) + ", config.json implies " +
                      shape_string(s.shape));
    if (!dtype_is_float_decodable(loc.entry->dtype))
      throw Error(ErrorCode::DtypeMismatch, loc.file->path(), "tensor '" + name + "' is not F32/F16/BF16");
    to_read.emplace_back(name, &s);
    expected.erase(it);
  }
  if (!expected.empty())
    throw Error(ErrorCode::TensorSetMismatch, dir, "the checkpoint lacks tensor '" + expected.begin()->first + "'");
  LlamaParams p(c);
  DType seen = DType::F32;
  for (const auto& [name, s] : to_read) {
    seen = ck.at(name).entry->dtype;
    TensorView v = ck.view(name);
    decode_to_f32(seen, v.bytes, 0, std::span<float>(p.data().data() + s->offset, s->numel));
  }
  for (float v : p.data())
    if (!std::isfinite(v)) throw Error(ErrorCode::NonFinite, dir, "the model has a NaN or infinite weight");
  p.set_storage_dtype(seen);
  return p;
}

void require_same_layout(const LlamaParams& a, const LlamaParams& b, const std::string& b_dir,
                         const std::string& than) {
  const auto& x = a.slices();
  const auto& y = b.slices();
  if (x.size() != y.size() || !std::equal(x.begin(), x.end(), y.begin(), [](const ParamSlice& s, const ParamSlice& t) {
        return s.name == t.name && s.shape == t.shape;
      }))
    throw Error(ErrorCode::ShapeMismatch, b_dir, "has other shapes than " + than);
}

void save_llama(const LlamaParams& p, const std::string& dir, DType dtype, bool overwrite,
                const std::vector<std::pair<std::string, std::string>>& extra_files, uint64_t max_shard_bytes) {
  namespace fs = std::filesystem;
  check_output_path(dir, {}, overwrite);
  AtomicDirectory out(dir);
  std::vector<TensorSpec> specs;
  for (const auto& s : p.slices()) specs.push_back({s.name, dtype, s.shape});
  CheckpointWriter w(out.temp_dir(), specs, max_shard_bytes ? max_shard_bytes : UINT64_MAX, {{"format", "pt"}});
  std::vector<uint8_t> bytes;
  for (const auto& s : p.slices()) {
    bytes.resize(s.numel * dtype_size(dtype));
    encode_from_f32(dtype, std::span<const float>(p.data().data() + s.offset, s.numel), bytes);
    w.write(bytes.data(), bytes.size());
  }
  w.commit();
  LlamaConfig c = p.config();
  c.dtype = dtype;
  std::vector<std::pair<std::string, std::string>> files = {{"config.json", llama_config_json(c)}};
  std::string gen = "{\n";
  if (c.bos_id >= 0) gen += "  \"bos_token_id\": " + std::to_string(c.bos_id) + ",\n";
  if (c.eos_id >= 0) gen += "  \"eos_token_id\": " + std::to_string(c.eos_id) + ",\n";
  gen += "  \"do_sample\": false\n}\n";
  files.push_back({"generation_config.json", gen});
  for (const auto& f : extra_files) files.push_back(f);
  for (const auto& [name, text] : files) {
    write_file_atomically((fs::path(out.temp_dir()) / name).string(), text);
  }
  out.commit();
}

}  // namespace deltakit
