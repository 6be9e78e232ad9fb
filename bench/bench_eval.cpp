// Evaluation and importance throughput on a preset's model shape (random weights; speed does not
// depend on them), each beside a baseline run in the same process:
//   eval without reference   teacher-forced loss over token windows (deltakit eval --tokens)
//   eval with --reference     greedy continuation by the reference + both models teacher-forced
//                             (divergent_tokens), tokens/s counted over the N continued tokens,
//                             and its ratio to the loss eval
//   importance fisher / act   seconds per million parameters, and the ratio to one batched
//                             forward+backward over the same tokens (fisher runs sequences one at
//                             a time: batch 1, one backward each)
//   bench_eval [size] [threads]
#include <cstdio>
#include <string>

#include "bench/bench_timing.h"
#include "src/eval/batches.h"
#include "src/eval/calibration.h"
#include "src/eval/divergence.h"
#include "src/eval/embedded.h"
#include "src/eval/evaluate.h"
#include "src/eval/importance.h"
#include "src/model/kernels.h"
#include "src/model/llama_model.h"
#include "src/eval/prompts.h"
#include "src/eval/skills.h"

using namespace deltakit;

int main(int argc, char** argv) {
  const std::string size = argc > 1 ? argv[1] : "small";
  kernels::set_threads(argc > 2 ? std::stoi(argv[2]) : 0);
  const LlamaConfig c = embedded_preset(size).model;
  LlamaParams ref(c), model(c);
  ref.init_random(1), model.init_random(2);
  for (size_t i = 0; i < model.data().size(); ++i) model.data()[i] = ref.data()[i] + 0.01f * model.data()[i];
  const double mparams = static_cast<double>(ref.data().size()) / 1e6;
  std::printf("model %s: %.2f M parameters, context %llu\n", size.c_str(), mparams,
              static_cast<unsigned long long>(c.max_seq));

  // without reference: loss over 64 windows of the context
  const std::vector<int32_t> ids = corpus_tokens(kEvalStream, 2000);
  const int64_t window = static_cast<int64_t>(c.max_seq) - 1;
  std::vector<int32_t> text(ids.begin(), ids.begin() + std::min<int64_t>(ids.size(), 64 * window + 1));
  LossReport lr;
  const double t_loss = bench::best_of(3, [&] { lr = evaluate_loss(model, text, window); });
  const double loss_tps = static_cast<double>(lr.tokens) / t_loss;
  // with reference: 64 corpus prompts of 16 tokens, N = 32
  const auto prompts = make_prompts("corpus", 64, 16, c.vocab);
  DivergenceOptions o;
  o.new_tokens = 32;
  const double t_ref = bench::best_of(3, [&] { divergent_tokens(ref, model, prompts, o); });
  const double ref_tps = 64.0 * 32.0 / t_ref;
  std::printf("eval (loss, no reference)     %9.0f tokens/s\n", loss_tps);
  std::printf("eval --reference (N=32)       %9.0f continued tokens/s  (%.2fx the loss eval's rate)\n", ref_tps,
              ref_tps / loss_tps);

  // importance on 32 corpus sequences of 64 tokens, against one batched forward+backward of them
  ImportanceOptions io;
  io.samples = 32, io.seq_len = std::min<int64_t>(64, static_cast<int64_t>(c.max_seq));
  const BatchFn calib = calibration_batches("corpus", c.vocab);
  const double t_fisher = bench::best_of(2, [&] { fisher_diagonal(model, calib, io); });
  const double t_act = bench::best_of(2, [&] { activation_second_moments(model, calib, io); });
  Batch b;
  b.B = io.samples, b.T = io.seq_len;
  calib(b, 0);
  LlamaModel m(c);
  std::vector<float> grads(model.data().size());
  const double t_fb = bench::best_of(2, [&] {
    m.forward(model.view(), b.tokens.data(), b.targets.data(), b.B, b.T);
    m.backward(model.view(), model.bind(grads.data()));
  });
  const double t_fwd = bench::best_of(2, [&] { m.forward(model.view(), b.tokens.data(), b.targets.data(), b.B, b.T); });
  std::printf("importance fisher (%lld x %lld)  %7.3f s per million parameters  (%.2fx one batched forward+backward)\n",
              static_cast<long long>(io.samples), static_cast<long long>(io.seq_len), t_fisher / mparams,
              t_fisher / t_fb);
  std::printf("importance act    (%lld x %lld)  %7.3f s per million parameters  (%.2fx one batched forward)\n",
              static_cast<long long>(io.samples), static_cast<long long>(io.seq_len), t_act / mparams, t_act / t_fwd);
  return 0;
}
