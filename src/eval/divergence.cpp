#include "src/eval/divergence.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "src/model/llama_model.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
int64_t argmax(const float* p, int64_t V) {
  return std::max_element(p, p + V) - p;  // the first of equal maxima: the lowest index
}

double kl(const float* p, const float* q, int64_t V) {
  double s = 0;
  for (int64_t i = 0; i < V; ++i)
    if (p[i] > 0) s += p[i] * (std::log(static_cast<double>(p[i])) - std::log(std::max<double>(q[i], 1e-38)));
  return std::max(0.0, s);
}

void check_same_shape(const LlamaConfig& a, const LlamaConfig& b) {
  if (a.vocab != b.vocab || a.dim != b.dim || a.layers != b.layers || a.max_seq != b.max_seq)
    throw Error(ErrorCode::InvalidValue, "", "the model and the reference differ in shape (vocabulary, width, depth or context)");
}
}  // namespace

ReferenceText reference_text(const LlamaParams& reference, const std::vector<std::vector<int32_t>>& prompts,
                             const DivergenceOptions& o) {
  const LlamaConfig& c = reference.config();
  const int64_t N = o.new_tokens, cap = static_cast<int64_t>(c.max_seq);
  if (N < 1) throw Error(ErrorCode::InvalidValue, "", "--new-tokens must be >= 1");
  for (const auto& x : prompts)
    if (x.empty() || static_cast<int64_t>(x.size()) + N > cap)
      throw Error(ErrorCode::InvalidValue, "", "a prompt of " + std::to_string(x.size()) + " tokens and " + std::to_string(N) +
                                  " new ones do not fit the context of " + std::to_string(cap));
  // y: the reference's greedy continuation (no stop token: always N tokens)
  return {prompts, generate_greedy(c, reference.view(), prompts, N, -1).tokens};
}

DivergenceReport divergent_tokens(const LlamaParams& reference, const LlamaParams& model,
                                  const std::vector<std::vector<int32_t>>& prompts, const DivergenceOptions& o) {
  check_same_shape(reference.config(), model.config());
  return divergent_tokens(reference, reference_text(reference, prompts, o), model, o);
}

DivergenceReport divergent_tokens(const LlamaParams& reference, const ReferenceText& text, const LlamaParams& model,
                                  const DivergenceOptions& o) {
  const LlamaConfig& c = reference.config();
  check_same_shape(c, model.config());
  const int64_t N = o.new_tokens, V = static_cast<int64_t>(c.vocab);
  const auto& prompts = text.prompts;
  const auto& y = text.continuations;
  if (y.size() != prompts.size()) throw Error(ErrorCode::InvalidValue, "", "a reference text with fewer continuations than prompts");
  DivergenceReport r;
  r.prompts = static_cast<int64_t>(prompts.size());
  r.new_tokens = N;
  r.tau = o.tau < 0 ? N : o.tau;
  LlamaModel ref_model(c), test_model(model.config());
  const ModelWeights rw = reference.view(), mw = model.view();
  double sdt_sum = 0, kl_sum = 0;
  int64_t kl_count = 0;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(o.batch)) {
    const int64_t B = std::min<int64_t>(o.batch, static_cast<int64_t>(prompts.size() - first));
    int64_t T = 0;  // inputs [x; y] without y's last token: predictions for y_0..y_{N-1}
    for (int64_t b = 0; b < B; ++b) T = std::max<int64_t>(T, static_cast<int64_t>(prompts[first + b].size()) + N - 1);
    std::vector<int32_t> tok(static_cast<size_t>(B * T), 0), none(tok.size(), -1);
    for (int64_t b = 0; b < B; ++b) {
      const auto& x = prompts[first + b];
      const auto& yb = y[first + b];
      if (static_cast<int64_t>(yb.size()) != N)
        throw Error(ErrorCode::InvalidValue, "", "a reference continuation of " + std::to_string(yb.size()) + " tokens, not " +
                                    std::to_string(N));
      int32_t* row = tok.data() + b * T;
      std::copy(x.begin(), x.end(), row);
      std::copy(yb.begin(), yb.end() - 1, row + x.size());
    }
    ref_model.forward(rw, tok.data(), none.data(), B, T);
    test_model.forward(mw, tok.data(), none.data(), B, T);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t plen = static_cast<int64_t>(prompts[first + b].size());
      int64_t fdt = N, diverged = 0;
      for (int64_t i = 0; i < N; ++i) {
        const int64_t m = b * T + plen - 1 + i;  // the position that predicts y_i
        const float* pr = ref_model.probs() + m * V;
        const float* pm = test_model.probs() + m * V;
        const int64_t want = argmax(pr, V);
        r.reference_ties += want != y[first + b][static_cast<size_t>(i)];
        if (argmax(pm, V) != want) {
          ++diverged;
          fdt = std::min(fdt, i);
        }
        kl_sum += kl(pr, pm, V);
        ++kl_count;
      }
      r.fdt.push_back(fdt);
      sdt_sum += static_cast<double>(diverged) / static_cast<double>(N);
    }
  }
  if (r.prompts > 0) {
    double sum = 0;
    int64_t reach = 0;
    for (int64_t f : r.fdt) sum += static_cast<double>(f), reach += f >= r.tau;
    r.fdt_mean = sum / static_cast<double>(r.prompts);
    std::vector<int64_t> sorted = r.fdt;
    std::sort(sorted.begin(), sorted.end());
    const size_t h = sorted.size() / 2;
    r.fdt_median =
        sorted.size() % 2 ? static_cast<double>(sorted[h]) : 0.5 * static_cast<double>(sorted[h - 1] + sorted[h]);
    r.sdt_mean = sdt_sum / static_cast<double>(r.prompts);
    r.share_fdt_at_least_tau = static_cast<double>(reach) / static_cast<double>(r.prompts);
    r.kl_mean = kl_count ? kl_sum / static_cast<double>(kl_count) : 0;
  }
  return r;
}

}  // namespace deltakit
