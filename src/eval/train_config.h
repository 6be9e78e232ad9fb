// The YAML form of `deltakit train --config FILE`: a size preset's fields, any of which can be
// overridden; unknown keys and wrong types are refused naming the file.
//   size: small
//   model: {hidden_size: 128, intermediate_size: 352, num_hidden_layers: 4, num_attention_heads: 4,
//           num_key_value_heads: 2, head_dim: 32, max_position_embeddings: 64, rope_theta: 10000}
//   train: {steps: 1200, batch: 16, seq: 64, lr: 0.003, warmup: 40, weight_decay: 0.1, seed: 1}
//   skill_share: 0.1
#pragma once

#include <string>

#include "src/eval/embedded.h"

namespace deltakit {

EmbeddedPreset read_train_config(const std::string& path);

}  // namespace deltakit
