#include "src/serve/served_model.h"

#include <filesystem>
#include <mutex>

#include "formats/adapter_h5.h"
#include "src/codec/codec.h"
#include "src/core/error.h"
#include "src/model/kernels.h"
#include "src/pipeline/apply.h"
#include "src/pipeline/finetune_input.h"

namespace deltakit {

namespace {
// HDF5 is not built thread-safe here: adapters are opened one at a time.
std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

std::unique_ptr<ServedBase> load_served_base(const std::string& dir) {
  auto b = std::make_unique<ServedBase>();
  b->path = dir;
  b->name = std::filesystem::path(dir).lexically_normal().filename().string();
  if (b->name.empty() || b->name == ".") b->name = std::filesystem::absolute(dir).parent_path().filename().string();
  b->params = load_llama(dir);
  b->config = b->params.config();
  b->w = b->params.bind();
  b->tokenizer = load_tokenizer(dir, b->config.vocab);
  b->checkpoint = std::make_unique<Checkpoint>(dir);
  const int64_t hd = static_cast<int64_t>(b->config.head_dim), cap = static_cast<int64_t>(b->config.max_seq);
  b->rope_cos.resize(cap * (hd / 2));
  b->rope_sin.resize(cap * (hd / 2));
  kernels::rope_tables(b->rope_cos.data(), b->rope_sin.data(), cap, hd, b->config.rope_theta);
  return b;
}

namespace {

// Where each tensor of a tenant goes: a product, or an effective vector over the base's values.
struct TenantSlots {
  std::map<std::string, std::unique_ptr<DeltaProduct>*> products;
  std::map<std::string, std::pair<std::vector<float>*, const float*>> vectors;
};

TenantSlots tenant_slots(const ServedBase& base, Tenant* t) {
  TenantSlots slots;
  auto& products = slots.products;
  auto& vectors = slots.vectors;
  products["model.embed_tokens.weight"] = &t->embed;
  products["lm_head.weight"] = &t->lm_head;
  vectors["model.norm.weight"] = {&t->norm, base.w.norm};
  for (uint64_t l = 0; l < base.config.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    TenantLayer& L = t->layers[l];
    const LayerWeights& B = base.w.layers[l];
    products[p + "self_attn.q_proj.weight"] = &L.q;
    products[p + "self_attn.k_proj.weight"] = &L.k;
    products[p + "self_attn.v_proj.weight"] = &L.v;
    products[p + "self_attn.o_proj.weight"] = &L.o;
    products[p + "mlp.gate_proj.weight"] = &L.gate;
    products[p + "mlp.up_proj.weight"] = &L.up;
    products[p + "mlp.down_proj.weight"] = &L.down;
    vectors[p + "input_layernorm.weight"] = {&L.attn_norm, B.attn_norm};
    vectors[p + "post_attention_layernorm.weight"] = {&L.mlp_norm, B.mlp_norm};
    vectors[p + "self_attn.q_proj.bias"] = {&L.bq, B.bq};
    vectors[p + "self_attn.k_proj.bias"] = {&L.bk, B.bk};
    vectors[p + "self_attn.v_proj.bias"] = {&L.bv, B.bv};
  }
  return slots;
}

void hold_product(Tenant& t, std::unique_ptr<DeltaProduct>* slot, std::unique_ptr<DeltaProduct> prod) {
  auto& entry = t.held[prod->form()];
  entry.first += 1, entry.second += prod->bytes();
  t.bytes += prod->bytes();
  *slot = std::move(prod);
}

// A PEFT LoRA tenant: each module's factors as a low-rank product.
void load_lora_tenant(const ServedBase& base, Tenant& t, TenantSlots& slots) {
  PeftLora lora(t.path);
  lora.check_against_base(*base.checkpoint);
  for (const LoraModule& m : lora.modules()) {
    const std::string tensor = m.module + ".weight";
    auto it = slots.products.find(tensor);
    if (it == slots.products.end())
      throw Error(ErrorCode::TensorSetMismatch, t.path, "module '" + m.module + "' is not a map the served model uses");
    const auto shape = m.target_shape(lora.config().fan_in_fan_out);
    hold_product(t, it->second, lowrank_product(shape[0], shape[1], lora_factors(lora, m)));
  }
}

}  // namespace

std::shared_ptr<const Tenant> load_tenant(const ServedBase& base, const std::string& name, const std::string& path) {
  auto t = std::make_shared<Tenant>();
  t->name = name;
  t->path = path;
  t->layers.resize(base.config.layers);
  TenantSlots slots = tenant_slots(base, t.get());
  if (is_peft_lora_folder(path)) {
    load_lora_tenant(base, *t, slots);
    return t;
  }
  auto& products = slots.products;
  auto& vectors = slots.vectors;
  std::lock_guard<std::mutex> lock(hdf5_mutex());
  AdapterReader ad(path);
  check_adapter_matches_base(*base.checkpoint, ad);
  std::vector<std::string> warnings;
  for (const std::string& tensor : ad.names()) {
    const TensorView bv = base.checkpoint->view(tensor);
    check_base_fingerprint(ad, bv, base.path, false, warnings);
    const AdapterTensorSource src = ad.source(tensor);
    std::unique_ptr<DeltaProduct> prod = product_of_stored({ad.attrs(tensor), src, ad.where(tensor)}, bv);
    if (!prod) continue;  // unchanged
    if (auto it = products.find(tensor); it != products.end()) {
      hold_product(*t, it->second, std::move(prod));
    } else if (auto jt = vectors.find(tensor); jt != vectors.end() && jt->second.second) {
      std::vector<float>& v = *jt->second.first;
      v.resize(prod->cols() * prod->rows());
      prod->decode_row(0, v.data());
      for (size_t i = 0; i < v.size(); ++i) v[i] += jt->second.second[i];
      auto& entry = t->held["vector"];
      entry.first += 1, entry.second += v.size() * sizeof(float);
      t->bytes += v.size() * sizeof(float);
    } else {
      throw Error(ErrorCode::TensorSetMismatch, path, "tensor '" + tensor + "' is not a tensor the served model uses");
    }
  }
  return t;
}

}  // namespace deltakit
