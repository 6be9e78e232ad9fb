// Importance of each weight for Hessian-aware compression (algorithms.md §3), estimated on calibration
// sequences (src/eval/calibration.h) at the weights given — normally the fine-tune's:
//   fisher  the diagonal of the empirical Fisher, F_i = mean over sequences s of (∂L_s/∂θ_i)²,
//           L_s = seq_len × the token-mean NLL of sequence s (CherryQ's estimator: batch 1,
//           running mean of squared gradients). One value per weight, every parameter tensor.
//   act     per linear map y = W x, E[x_c²] over the calibration positions (padding excluded):
//           the diagonal of the layer Hessian ½∇²‖(W − Ŵ)x‖², shared by every row. One value per
//           input column of each q/k/v/o/gate/up/down projection and of lm_head (written under
//           model.embed_tokens.weight when the embeddings are tied, since that tensor is the head).
// The file is safetensors, F32, one tensor per weight under the weight's own name (shape of the
// weight for fisher, [in_features] for act), metadata: deltakit.importance = fisher|act,
// samples, seq_len, source. `cherry:importance=fisher:FILE` / `act:FILE` reads it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "src/model/llama_params.h"
#include "src/model/trainer.h"

namespace deltakit {

struct ImportanceTensor {
  std::string name;
  std::vector<uint64_t> shape;
  std::vector<float> values;
};

struct ImportanceOptions {
  int64_t samples = 128, seq_len = 64;
  int64_t batch = 8;  // act: sequences per forward pass (fisher takes one at a time)
};

std::vector<ImportanceTensor> fisher_diagonal(const LlamaParams& p, const BatchFn& calibration,
                                              const ImportanceOptions& o);
std::vector<ImportanceTensor> activation_second_moments(const LlamaParams& p, const BatchFn& calibration,
                                                        const ImportanceOptions& o);

// Written atomically; refuses an existing path without overwrite.
void write_importance(const std::string& path, const std::vector<ImportanceTensor>& tensors,
                      const std::map<std::string, std::string>& metadata, bool overwrite);

}  // namespace deltakit
