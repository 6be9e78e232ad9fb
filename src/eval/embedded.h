// The embedded default: model shapes and training settings per size preset, and the drivers
// that train a base on the synthetic corpus and fine-tune it on a skill or a text.
//
// Fine-tuning regimes (report mean|δ|/mean|θ| per tensor family with `deltakit diff`):
//   sft        few steps at a small learning rate on the skill alone: small deltas, the regime
//              where DARE and BitDelta are claimed to work;
//   continued  many more steps at the pre-training learning rate: large deltas, where DARE is
//              claimed to fail.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "src/model/llama_params.h"
#include "src/model/trainer.h"

namespace deltakit {

struct EmbeddedPreset {
  std::string name;
  LlamaConfig model;
  TrainOptions base;
  double skill_share = 0.1;  // share of corpus lines that are noisy skill examples
  TrainOptions sft, continued;
  int64_t eval_examples = 200;
};

// "tiny" (tests), "small" (the demo's default), "medium".
EmbeddedPreset embedded_preset(const std::string& size);

using Logger = std::function<void(const TrainStep&)>;

// Trains a base from scratch on the corpus and writes it to out_dir (fp32 storage, so that the
// small updates of a fine-tune are not rounded away).
void train_base(const EmbeddedPreset& p, const std::string& out_dir, bool overwrite, const Logger& log);
// Fine-tunes base_dir on a skill ("add", ...) or on a text ("text:FILE", tokenized with the
// model's tokenizer) in a regime ("sft" or "continued"); writes out_dir in the base's dtype.
void finetune(const std::string& base_dir, const std::string& task, const TrainOptions& o, const std::string& out_dir,
              bool overwrite, const Logger& log);

}  // namespace deltakit
