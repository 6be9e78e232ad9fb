// Measurements of a model: next-token loss over a token stream in windows, and exact-match
// accuracy on a skill of the embedded data (greedy answers from held-out prompts).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/llama_params.h"

namespace deltakit {

struct LossReport {
  double loss = 0;  // mean next-token cross-entropy (nats)
  double perplexity = 0;
  int64_t tokens = 0, windows = 0;
};
// Windows of `window` predictions (consecutive, non-overlapping; a window of n predictions reads
// n + 1 tokens), `batch` windows per forward pass.
LossReport evaluate_loss(const LlamaParams& p, const std::vector<int32_t>& ids, int64_t window, int64_t batch = 8);

struct SkillReport {
  std::string skill;
  int64_t correct = 0, total = 0;
  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
  std::vector<std::string> samples;  // the first few "prompt -> answer (want)" lines
};
// `n` held-out examples (evaluation stream `seed`), answered greedily up to the newline.
SkillReport evaluate_skill(const LlamaParams& p, const std::string& skill, int64_t n, uint64_t seed);

// Held-out text of the base corpus, as byte tokens (for perplexity of the embedded models).
std::vector<int32_t> corpus_tokens(uint64_t seed, int64_t lines);

}  // namespace deltakit
