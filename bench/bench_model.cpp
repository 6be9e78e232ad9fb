// Model engine throughput on the demo's model (the "small" preset): forward and forward+backward
// tokens/s and achieved GFLOP/s, beside (a) a naive triple-loop matmul of the model's largest
// GEMM shape in the same run and (b) the machine's fp32 peak, estimated as cores x clock x 32
// FLOP/cycle (two 256-bit FMA pipes, as on Zen 4 / Intel cores with AVX-512 or AVX2 x 2 FMA).
//   bench_model [size] [threads]
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_timing.h"
#include "src/eval/batches.h"
#include "src/eval/embedded.h"
#include "src/model/kernels.h"
#include "src/model/llama_model.h"

using namespace deltakit;

static double cpu_mhz() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("cpu MHz", 0) == 0) return std::stod(line.substr(line.find(':') + 1));
  return 0;
}

int main(int argc, char** argv) {
  const std::string size = argc > 1 ? argv[1] : "small";
  const int threads = argc > 2 ? std::stoi(argv[2]) : 0;
  kernels::set_threads(threads);
  const EmbeddedPreset p = embedded_preset(size);
  const LlamaConfig& c = p.model;
  LlamaParams params(c);
  params.init_random(1);
  std::vector<float> grads(params.data().size());
  LlamaModel model(c);
  Batch b;
  b.B = p.base.batch, b.T = p.base.seq;
  corpus_batch(b, 1, 0, 0.1);
  const double tokens = static_cast<double>(b.B * b.T);
  // FLOPs of one forward: 2 per weight per token in the matmuls, plus attention's QKᵀ and AV
  // (2·T/2·head_dim·heads each per token on average, causal); backward is twice the forward.
  double matmul_weights = 0;
  for (const auto& s : params.slices())
    if (s.shape.size() == 2 && s.name != "model.embed_tokens.weight") matmul_weights += static_cast<double>(s.numel);
  if (c.tie_embeddings) matmul_weights += static_cast<double>(c.vocab * c.dim);
  const double attn = 2.0 * 2.0 * (static_cast<double>(b.T) / 2.0) * static_cast<double>(c.q_dim()) * c.layers;
  const double fwd_flops = tokens * (2.0 * matmul_weights + attn);
  const ModelWeights w = params.bind(), g = params.bind(grads.data());
  const double t_fwd = bench::best_of(5, [&] { model.forward(w, b.tokens.data(), b.targets.data(), b.B, b.T); });
  const double t_fb = bench::best_of(5, [&] {
    model.forward(w, b.tokens.data(), b.targets.data(), b.B, b.T);
    model.backward(w, g);
  });
  // the largest GEMM of the model (MLP up: [B·T, dim] x [hidden, dim]ᵀ), engine vs naive loops
  const int64_t M = b.B * b.T, K = c.dim, N = c.hidden;
  std::vector<float> x(M * K, 0.5f), wt(N * K, 0.25f), out(M * N);
  const double t_gemm = bench::best_of(5, [&] { kernels::matmul_forward(out.data(), x.data(), wt.data(), nullptr, M, K, N); });
  const double t_naive = bench::best_of(2, [&] {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        float s = 0;
        for (int64_t k = 0; k < K; ++k) s += x[i * K + k] * wt[j * K + k];
        out[i * N + j] = s;
      }
  });
  const unsigned cores = threads ? static_cast<unsigned>(threads) : std::thread::hardware_concurrency();
  const double peak = cores * cpu_mhz() * 1e6 * 32.0;
  const double gemm_flops = 2.0 * M * K * N;
  std::printf("model %s: %.2f M parameters, batch %lld x %lld tokens, %u threads, peak estimate %.1f GFLOP/s "
              "(%u cores x %.0f MHz x 32 FLOP/cycle)\n",
              size.c_str(), params.data().size() / 1e6, static_cast<long long>(b.B), static_cast<long long>(b.T), cores,
              peak / 1e9, cores, cpu_mhz());
  std::printf("forward            %9.0f tokens/s  %6.1f GFLOP/s  %5.1f%% of peak\n", tokens / t_fwd,
              fwd_flops / t_fwd / 1e9, 100.0 * fwd_flops / t_fwd / peak);
  std::printf("forward+backward   %9.0f tokens/s  %6.1f GFLOP/s  %5.1f%% of peak\n", tokens / t_fb,
              3.0 * fwd_flops / t_fb / 1e9, 100.0 * 3.0 * fwd_flops / t_fb / peak);
  std::printf("GEMM %lldx%lldx%lld  engine %6.1f GFLOP/s, naive loops %6.1f GFLOP/s (1 thread): %.1fx\n",
              static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N), gemm_flops / t_gemm / 1e9,
              gemm_flops / t_naive / 1e9, t_naive / t_gemm);
  return 0;
}
