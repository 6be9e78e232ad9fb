// A fine-tune as diff, compress and merge read it: a checkpoint folder, or a PEFT LoRA folder
// over the base (formats/peft_lora.h). A LoRA fine-tune has the base's tensors; those it targets
// read as round(base + scale·B·A) in the base's dtype, what PEFT's merge_and_unload() writes,
// and their exact fp32 delta is there for codecs and merges that take δ itself.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "formats/peft_lora.h"
#include "src/codec/lowrank.h"

namespace deltakit {

// A module's factors in its base tensor's orientation: δ = us·vᵀ with us [rows, r], v [cols, r]
// (the scale folded into B's side).
LowrankFactors lora_factors(const PeftLora& lora, const LoraModule& m);

class FinetuneInput {
 public:
  // `path` is a checkpoint or a PEFT LoRA folder; a LoRA is checked against `base` here.
  FinetuneInput(const std::string& path, const Checkpoint& base);

  const std::string& path() const { return path_; }
  const PeftLora* lora() const { return lora_.get(); }
  const Checkpoint* checkpoint() const { return ckpt_.get(); }
  // Tensor names in storage order (a LoRA: the base's).
  const std::vector<std::string>& names() const;
  const SafetensorsEntry& entry(const std::string& name) const;
  // The fine-tune's tensor; a LoRA's targeted tensors are computed and held until release().
  TensorView acquire(const std::string& name, bool populate = true);
  void release(const std::string& name);
  // A LoRA's exact δ for `name` in fp32 (empty: not a LoRA, or a tensor it does not target).
  std::vector<float> lora_delta(const std::string& name) const;
  // The same δ acquire() computed for a tensor it holds, without computing it again (empty where
  // lora_delta is).
  std::span<const float> held_lora_delta(const std::string& name);
  void check_intact() const;
  // The files a resumable job fingerprints, and the folder whose side files the fine-tune has
  // (a LoRA has none of its own: the base's).
  std::vector<std::string> input_files() const;
  std::string side_file_folder() const;

 private:
  std::string path_;
  const Checkpoint& base_;
  std::unique_ptr<Checkpoint> ckpt_;
  std::unique_ptr<PeftLora> lora_;
  std::mutex mu_;
  struct Held {
    std::vector<uint8_t> bytes;  // base + δ rounded to the base's dtype
    std::vector<float> delta;    // δ itself
  };
  std::map<std::string, Held> held_;  // LoRA tensors between acquire and release
};

// The pairing check of a fine-tune against the base: the same tensors, shapes and dtypes.
void check_finetune_pairs(const Checkpoint& base, const FinetuneInput& ft);

}  // namespace deltakit
