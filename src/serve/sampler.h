// The next token from a row of logits: greedy at temperature 0 (the first maximum: ties go to the
// lowest id), else softmax(logits / T) cut to the smallest set of most likely tokens whose mass
// reaches top_p (ties by id), drawn with a counter-based uniform keyed by (seed, step) — so a
// request with a seed gives the same tokens every time, alone or batched.
#pragma once

#include <cstdint>
#include <span>

namespace deltakit {

struct SamplingParams {
  double temperature = 1.0;
  double top_p = 1.0;
  uint64_t seed = 0;
};

int32_t sample_token(std::span<const float> logits, const SamplingParams& p, uint64_t step);

}  // namespace deltakit
