#include "src/eval/batches.h"

#include <algorithm>
#include <cmath>

#include "src/core/philox.h"
#include "src/eval/skills.h"
#include "src/model/tokenizer.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
void resize(Batch& b) {
  b.tokens.assign(static_cast<size_t>(b.B * b.T), ByteTokenizer::kPad);
  b.targets.assign(b.tokens.size(), -1);
}


// Row r of a batch from consecutive corpus lines keyed by `row_key`.
void corpus_row(Batch& b, int64_t r, uint64_t seed, uint64_t row_key, double skill_share) {
  std::vector<int32_t> row;
  for (uint64_t j = 0; static_cast<int64_t>(row.size()) < b.T + 1; ++j) {
    const std::string line = corpus_line(seed, (row_key << 8) + j, skill_share);
    row.push_back(ByteTokenizer::kBos);
    for (unsigned char c : line) row.push_back(c);
    row.push_back('\n');
  }
  for (int64_t t = 0; t < b.T; ++t) {
    b.tokens[r * b.T + t] = row[t];
    b.targets[r * b.T + t] = row[t + 1];
  }
}
}  // namespace

void corpus_batch(Batch& b, uint64_t seed, int64_t step, double skill_share) {
  resize(b);
  // each row starts at its own line: rows and steps never share lines
  for (int64_t r = 0; r < b.B; ++r) corpus_row(b, r, seed, static_cast<uint64_t>(step * b.B + r), skill_share);
}

void skill_batch(Batch& b, const std::string& skill, uint64_t seed, int64_t step, double replay) {
  resize(b);
  const int64_t replayed = std::llround(std::clamp(replay, 0.0, 1.0) * static_cast<double>(b.B));
  for (int64_t r = b.B - replayed; r < b.B; ++r) {
    // the corpus without its noisy skill lines (with them, rev stalls at 55%); loss on the row's
    // last quarter only: the whole row's language-model gradient drowns the skill's once its loss
    // is small (Adam normalizes the sum) and rev stalls again
    corpus_row(b, r, seed ^ 0x2E91A7ull, static_cast<uint64_t>(step * b.B + r), 0.0);
    for (int64_t t = 0; t < b.T - b.T / 4; ++t) b.targets[r * b.T + t] = -1;
  }
  for (int64_t r = 0; r < b.B - replayed; ++r) {
    int64_t t = 0;
    for (uint64_t j = 0;; ++j) {
      SkillExample e = skill_example(skill, seed, (static_cast<uint64_t>(step * b.B + r) << 8) + j);
      const std::string text = e.prompt + e.answer + "\n";
      const int64_t n = 1 + static_cast<int64_t>(text.size());
      if (t + n > b.T) {
        if (j == 0) throw Error(ErrorCode::InvalidValue, "", "sequence length too short for one " + skill + " example");
        break;
      }
      int32_t* tok = b.tokens.data() + r * b.T + t;
      int32_t* tg = b.targets.data() + r * b.T + t;
      tok[0] = ByteTokenizer::kBos;
      for (size_t i = 0; i < text.size(); ++i) tok[i + 1] = static_cast<unsigned char>(text[i]);
      // position i predicts token i + 1; the answer starts after the prompt's '='
      const int64_t answer_from = 1 + static_cast<int64_t>(e.prompt.size());
      for (int64_t i = answer_from - 1; i < n - 1; ++i) tg[i] = tok[i + 1];
      t += n;
    }
  }
}

void stream_batch(Batch& b, const std::vector<int32_t>& stream, uint64_t seed, int64_t step) {
  resize(b);
  if (static_cast<int64_t>(stream.size()) < b.T + 1) throw Error(ErrorCode::InvalidValue, "", "the text is shorter than one window");
  TensorRng rng(seed, "stream_batch");
  const uint64_t starts = stream.size() - static_cast<uint64_t>(b.T);
  for (int64_t r = 0; r < b.B; ++r) {
    const uint64_t w = rng.word(static_cast<uint64_t>(step * b.B + r));
    const uint64_t at = (static_cast<uint64_t>(w) * starts) >> 32;
    for (int64_t t = 0; t < b.T; ++t) {
      b.tokens[r * b.T + t] = stream[at + t];
      b.targets[r * b.T + t] = stream[at + t + 1];
    }
  }
}

}  // namespace deltakit
