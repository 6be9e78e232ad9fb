// Per-codec encode and decode throughput on one Llama-shaped delta matrix, beside memcpy of the
// same bytes in the same run. Throughput is GB/s of fp32 delta (4 bytes per entry, the codec's
// input); "bf16 GB/s" counts 2 bytes per entry, the size of the fine-tune's own delta.
//   bench_codecs [--rows 4096] [--cols 4096] [--threads 1] [--reps 3] [--recipe R]...
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "src/codec/tensor_codec.h"
#include "src/core/allocator.h"

using namespace deltakit;
using deltakit::bench::best_of;
using deltakit::bench::now;

int main(int argc, char** argv) {
  keep_freed_memory();
  uint64_t rows = 4096, cols = 4096;
  unsigned threads = 1;
  int reps = 3;
  std::vector<std::string> recipes;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--rows") rows = std::stoull(v);
    else if (k == "--cols") cols = std::stoull(v);
    else if (k == "--threads") threads = static_cast<unsigned>(std::stoul(v));
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--recipe") recipes.push_back(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (recipes.empty())
    recipes = {"dare:p=0.9", "dare:p=0.99", "bitdelta", "bitdelta:scale=row", "bitdelta:levels=4", "quant:bits=4",
               "quant:bits=8", "quant:bits=3", "topk:density=0.1", "bitdelta + cherry:frac=0.01",
               "dare:p=0.5 > bitdelta:scale=row", "lowrank:rank=16"};
  const uint64_t n = rows * cols;
  std::vector<float> delta(n);
  std::mt19937 gen(1);
  std::normal_distribution<float> dist(0.0f, 1e-3f);
  for (auto& x : delta) x = dist(gen);
  const double gb = 4.0 * n / 1e9;

  std::vector<float> copy(n);
  std::memcpy(copy.data(), delta.data(), 4 * n);  // fault the pages in first
  double t_memcpy = best_of(reps, [&] { std::memcpy(copy.data(), delta.data(), 4 * n); });
  const double memcpy_gbps = gb / t_memcpy;
  std::printf("delta %llux%llu fp32 (%.1f MB), %u thread(s), best of %d\n", (unsigned long long)rows,
              (unsigned long long)cols, 4.0 * n / 1e6, threads, reps);
  std::printf("%-36s %10s %10s %9s %10s %9s %10s %9s\n", "recipe", "stored", "rel_err", "enc GB/s", "enc/memcpy",
              "dec GB/s", "dec/memcpy", "bf16 enc");
  std::printf("%-36s %10s %10s %9.2f %10s %9.2f %10s %9s\n", "memcpy (same bytes)", "", "", memcpy_gbps, "1.00",
              memcpy_gbps, "1.00", "");
  for (const auto& text : recipes) {
    Recipe r = parse_recipe(text, 0);
    TensorDelta t{"model.layers.0.mlp.up_proj.weight", DType::BF16, {rows, cols}, delta, {}, threads};
    Encoded e;
    double t_enc = best_of(reps, [&] { e = encode_tensor(r, t); });
    std::vector<float> recon;
    double t_dec = best_of(reps, [&] { recon = decode_tensor(e.attrs, EncodedSource(e), {rows, cols}, DType::BF16, "bench"); });
    uint64_t stored = 0;
    for (const auto& p : e.parts) stored += p.bytes.size();
    std::printf("%-36s %10llu %10.3e %9.2f %10.3f %9.2f %10.3f %9.2f\n", text.c_str(), (unsigned long long)stored,
                relative_error(delta, recon), gb / t_enc, gb / t_enc / memcpy_gbps, gb / t_dec,
                gb / t_dec / memcpy_gbps, gb / 2 / t_enc);
  }
  return 0;
}
