// Training batches of the embedded data (src/model/batch.h has the layout), made
// deterministically from (seed, step), so a run can be repeated or resumed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/batch.h"

namespace deltakit {

// Base pre-training: rows of consecutive corpus lines, "<bos>line\n<bos>line\n...", loss everywhere.
void corpus_batch(Batch& b, uint64_t seed, int64_t step, double skill_share);
// Supervised fine-tuning on a skill: rows packed with "<bos>prompt answer\n" examples, loss on the
// answer and its newline only (the prompt is the input, as in SFT); padding has no loss. The last
// round(replay·B) rows are corpus rows (loss everywhere), drawn from a stream of their own.
void skill_batch(Batch& b, const std::string& skill, uint64_t seed, int64_t step, double replay = 0.0);
// Random windows of a token stream (continued training on a text), loss everywhere.
void stream_batch(Batch& b, const std::vector<int32_t>& stream, uint64_t seed, int64_t step);

}  // namespace deltakit
