// `deltakit export-lora`: a delta as a PEFT LoRA adapter (formats/peft_lora.h), the format vLLM,
// LoRAX, PEFT and llama.cpp load. Each exported matrix's δ is truncated by SVD (lowrank_factorize:
// exact below 1024, randomized above) to rank R or to the rank that keeps a share E of ‖δ‖²,
// and the singular values are split evenly between the factors: B = U·√S, A = √S·Vᵀ. lora_alpha
// is the largest rank and each other module's alpha equals its rank (rank_pattern and
// alpha_pattern), so every module's scale alpha/r is 1 and B·A is δ's truncation itself.
//
// Which tensors: every changed matrix (2-D ".weight") matching --only; embeddings as
// lora_embedding_A/B (their δ transposed, as PEFT stores them). A changed tensor that is not a
// matrix (norms, biases) or is left out by --only cannot be carried and is reported as dropped,
// with its share of ‖δ‖². The δ comes from base + fine-tune (a checkpoint, or a LoRA to re-rank)
// or from base + a deltakit adapter (its decoded δ̂; an adapter stored as lowrank:rank=R
// exports exactly with --rank R). Under mpirun the SVDs are spread over the ranks by bytes and
// rank 0 writes the folder; the bytes are the same for any number of ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/core/comm.h"

namespace deltakit {

struct ExportLoraOptions {
  std::string base, finetuned, adapter;  // the δ: finetuned or adapter
  std::string out;
  uint64_t rank = 0;     // > 0: at most this rank per module...
  double energy = 0;     // ...else the smallest rank keeping this share of ‖δ‖²
  std::string only;      // glob over tensor names ("" = every matrix)
  std::string dtype;     // factors' dtype: "" (each base tensor's), float32, float16, bfloat16
  uint64_t seed = 0;     // of the randomized SVD's sketch
  unsigned threads = 0;  // 0: all cores of the rank
  bool overwrite = false;
};

struct ExportLoraModule {
  std::string tensor;
  uint64_t rank = 0;
  double energy_kept = 1, delta_sq = 0;
  bool embedding = false;
};

struct ExportLoraReport {
  std::vector<ExportLoraModule> modules;
  std::vector<std::pair<std::string, double>> dropped;  // changed tensors not carried: ‖δ‖²
  double delta_sq = 0;                                  // ‖δ‖² over the model
  double rel_error = 0;  // ‖δ − B·A‖ / ‖δ‖ over the model (dropped tensors included)
  uint64_t adapter_bytes = 0, finetune_bytes = 0;
  double seconds = 0;
  bool complete = false;  // true on rank 0
  std::vector<std::string> warnings;
};

ExportLoraReport run_export_lora(const ExportLoraOptions& opt, Comm& comm);
ExportLoraReport run_export_lora(const ExportLoraOptions& opt);  // one rank

}  // namespace deltakit
