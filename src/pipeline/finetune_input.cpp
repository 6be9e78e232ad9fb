#include "src/pipeline/finetune_input.h"

#include "src/core/error.h"
#include "src/pipeline/pair_check.h"

namespace deltakit {

LowrankFactors lora_factors(const PeftLora& lora, const LoraModule& m) {
  const std::vector<float> a = lora.factor(*m.a), b = lora.factor(*m.b);
  const uint64_t r = m.r, in = m.a->shape[1];
  const float scale = static_cast<float>(m.scale);
  LowrankFactors f;
  f.r = r;
  std::vector<float> at(in * r), bs(b.size());  // Aᵀ [in, r]; scale·B [out, r]
  for (uint64_t j = 0; j < r; ++j)
    for (uint64_t c = 0; c < in; ++c) at[c * r + j] = a[j * in + c];
  for (size_t k = 0; k < b.size(); ++k) bs[k] = scale * b[k];
  if (m.embedding || lora.config().fan_in_fan_out) {
    f.us = std::move(at), f.v = std::move(bs);  // δ [in, out] = (scale·B·A)ᵀ = Aᵀ·(scale·B)ᵀ
  } else {
    f.us = std::move(bs), f.v = std::move(at);  // δ [out, in] = (scale·B)·A
  }
  return f;
}

FinetuneInput::FinetuneInput(const std::string& path, const Checkpoint& base) : path_(path), base_(base) {
  if (is_peft_lora_folder(path)) {
    lora_ = std::make_unique<PeftLora>(path);
    lora_->check_against_base(base);
  } else {
    ckpt_ = std::make_unique<Checkpoint>(path);
  }
}

const std::vector<std::string>& FinetuneInput::names() const { return ckpt_ ? ckpt_->names() : base_.names(); }

const SafetensorsEntry& FinetuneInput::entry(const std::string& name) const {
  return *(ckpt_ ? ckpt_->at(name) : base_.at(name)).entry;
}

std::vector<float> FinetuneInput::lora_delta(const std::string& name) const {
  if (!lora_) return {};
  const LoraModule* m = lora_->module_for(name);
  if (!m) return {};
  const auto shape = m->target_shape(lora_->config().fan_in_fan_out);
  return lowrank_dense(lora_factors(*lora_, *m), shape[0], shape[1]);
}

TensorView FinetuneInput::acquire(const std::string& name, bool populate) {
  if (ckpt_) return ckpt_->acquire(name, populate);
  TensorView bv = base_.acquire(name, populate);
  std::vector<float> delta = lora_delta(name);
  if (delta.empty()) return bv;  // untouched by the LoRA: the base's own bytes
  std::vector<uint8_t> bytes(bv.bytes.size());
  add_scaled_delta(bv, {reinterpret_cast<const uint8_t*>(delta.data()), delta.size() * sizeof(float)}, 1.0f, bytes);
  std::lock_guard<std::mutex> lock(mu_);
  auto& held = held_[name] = {std::move(bytes), std::move(delta)};
  TensorView v = bv;
  v.bytes = held.bytes;
  v.file = nullptr;  // these bytes are in memory, not in the base's file
  return v;
}

std::span<const float> FinetuneInput::held_lora_delta(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(name);
  return it == held_.end() ? std::span<const float>() : std::span<const float>(it->second.delta);
}

void FinetuneInput::release(const std::string& name) {
  if (ckpt_) return ckpt_->release(name);
  base_.release(name);
  std::lock_guard<std::mutex> lock(mu_);
  held_.erase(name);
}

void FinetuneInput::check_intact() const {
  if (ckpt_) ckpt_->check_intact();
}

std::vector<std::string> FinetuneInput::input_files() const {
  std::vector<std::string> files;
  if (ckpt_) {
    for (const auto& s : ckpt_->shards()) files.push_back(s->path());
  } else {
    files.push_back(path_ + "/" + kLoraConfigName);
    files.push_back(path_ + "/" + kLoraWeightsName);
  }
  return files;
}

std::string FinetuneInput::side_file_folder() const { return ckpt_ ? path_ : base_.path(); }

void check_finetune_pairs(const Checkpoint& base, const FinetuneInput& ft) {
  if (ft.checkpoint()) check_same_tensors(base, *ft.checkpoint());
  // a LoRA was checked against the base when opened (formats/peft_lora.h)
}

}  // namespace deltakit
