// Divergent-token metrics of a model against a reference (algorithms.md §5, the definition
// we adopt): the reference continues each prompt x greedily for N tokens, y; both models then run
// teacher-forced on [x; y]. Position i of the continuation diverges when the model's argmax
// differs from the reference's argmax at the same position of the same text (lowest index wins a
// tie). The reference's teacher-forced argmax equals y_i except at exact logit near-ties, where
// the cached generation and the batched forward round differently; comparing both models through
// the same forward makes a model identical to the reference diverge nowhere (FDT = N), and the
// near-ties are counted apart (`reference_ties`).
//   FDT  first divergent position (N if none)      SDT  divergent positions / N
//   KL   mean over positions of KL(p_ref ‖ p_model), nats, from both softmaxes
#pragma once

#include <cstdint>
#include <vector>

#include "src/model/llama_params.h"

namespace deltakit {

struct DivergenceOptions {
  int64_t new_tokens = 32;  // N
  int64_t tau = -1;         // report the share of prompts with FDT >= tau (-1: N, never diverged)
  int64_t batch = 16;       // prompts per forward pass
};

struct DivergenceReport {
  int64_t prompts = 0, new_tokens = 0, tau = 0;
  double fdt_mean = 0, fdt_median = 0, sdt_mean = 0, share_fdt_at_least_tau = 0, kl_mean = 0;
  int64_t reference_ties = 0;  // positions where the reference's forward argmax is not its own y_i
  std::vector<int64_t> fdt;    // per prompt
};

// The reference's side of the measurement that does not depend on the model: the prompts and the
// reference's greedy continuation y of each (N tokens). Prompts longer than the context minus N
// are refused (Error InvalidValue).
struct ReferenceText {
  std::vector<std::vector<int32_t>> prompts, continuations;
};
ReferenceText reference_text(const LlamaParams& reference, const std::vector<std::vector<int32_t>>& prompts,
                             const DivergenceOptions& o);

// Both models must share a configuration's shapes (vocabulary, context). Comparing many models to
// one reference (plan, riemann) generates its text once and passes it to the second form.
DivergenceReport divergent_tokens(const LlamaParams& reference, const LlamaParams& model,
                                  const std::vector<std::vector<int32_t>>& prompts, const DivergenceOptions& o);
DivergenceReport divergent_tokens(const LlamaParams& reference, const ReferenceText& text, const LlamaParams& model,
                                  const DivergenceOptions& o);

}  // namespace deltakit
