#include "src/eval/evaluate.h"

#include <algorithm>
#include <cmath>

#include "src/model/llama_model.h"
#include "src/eval/skills.h"
#include "src/model/tokenizer.h"

namespace deltakit {

LossReport evaluate_loss(const LlamaParams& p, const std::vector<int32_t>& ids, int64_t window, int64_t batch) {
  LossReport r;
  window = std::min<int64_t>(window, static_cast<int64_t>(p.config().max_seq));
  if (ids.size() < 2 || window < 1) return r;
  LlamaModel model(p.config());
  const ModelWeights w = p.view();
  std::vector<int64_t> starts;
  for (int64_t s = 0; s + 1 < static_cast<int64_t>(ids.size()); s += window) starts.push_back(s);
  double sum = 0;
  for (size_t i = 0; i < starts.size(); i += static_cast<size_t>(batch)) {
    const int64_t B = std::min<int64_t>(batch, static_cast<int64_t>(starts.size() - i));
    std::vector<int32_t> tok(static_cast<size_t>(B * window), 0), tg(tok.size(), -1);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = starts[i + b], n = std::min<int64_t>(window, static_cast<int64_t>(ids.size()) - 1 - s);
      for (int64_t t = 0; t < n; ++t) tok[b * window + t] = ids[s + t], tg[b * window + t] = ids[s + t + 1];
    }
    model.forward(w, tok.data(), tg.data(), B, window);
    for (int64_t m = 0; m < B * window; ++m) sum += model.losses()[m];
    r.tokens += model.counted();
  }
  r.windows = static_cast<int64_t>(starts.size());
  r.loss = r.tokens ? sum / static_cast<double>(r.tokens) : 0;
  r.perplexity = std::exp(r.loss);
  return r;
}

SkillReport evaluate_skill(const LlamaParams& p, const std::string& skill, int64_t n, uint64_t seed) {
  SkillReport r;
  r.skill = skill;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SkillExample> ex;
  ByteTokenizer tok;
  for (int64_t i = 0; i < n; ++i) {
    ex.push_back(skill_example(skill, seed, static_cast<uint64_t>(i)));
    std::vector<int32_t> pr = {ByteTokenizer::kBos};
    for (int32_t id : tok.encode(ex.back().prompt)) pr.push_back(id);
    prompts.push_back(pr);
  }
  // room for the longest answer and a few more characters, to see a wrong, longer one
  size_t longest = 0;
  for (const auto& e : ex) longest = std::max(longest, e.answer.size());
  const auto out = generate_greedy(p.config(), p.view(), prompts, static_cast<int64_t>(longest) + 4, '\n');
  for (int64_t i = 0; i < n; ++i) {
    const std::string got = tok.decode(out.tokens[i]);
    const bool ok = got == ex[i].answer;
    r.correct += ok;
    ++r.total;
    if (r.samples.size() < 4) r.samples.push_back(ex[i].prompt + got + (ok ? "" : "   (want " + ex[i].answer + ")"));
  }
  return r;
}

std::vector<int32_t> corpus_tokens(uint64_t seed, int64_t lines) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < lines; ++i) {
    ids.push_back(ByteTokenizer::kBos);
    for (unsigned char c : corpus_line(seed, static_cast<uint64_t>(i), 0.0)) ids.push_back(c);
    ids.push_back('\n');
  }
  return ids;
}

}  // namespace deltakit
