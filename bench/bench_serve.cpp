// Serving throughput: decode tokens/s of one base serving many BitDelta tenants from their
// compressed form, beside (a) the base alone at the same batch — the ceiling — and (b) the naive
// alternative a user has today: a dense applied checkpoint per tenant, one tenant's rows at a
// time. All three run the same engine (src/serve/engine.h) in the same process, on a fixture
// preset large enough that weights dominate (random weights: speed does not depend on them).
//   bench_serve [size=medium] [threads=0] [steps=4]
// The 16 (or 64) tenants hold the same adapter file loaded separately: distinct memory and the
// same work as distinct fine-tunes, without compressing 64 of them first.
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "bench/bench_timing.h"
#include "src/fixture/llama_fixture.h"
#include "src/pipeline/compress.h"
#include "src/serve/engine.h"

using namespace deltakit;
namespace fs = std::filesystem;

namespace {

constexpr int kReps = 3;  // each figure: the best of three windows of `steps` steps

// Decode tokens/s: `batch` sequences, sequence i of tenant i % tenants.size() (null: the base),
// prompts prefilled first (untimed), then the best of kReps windows of `steps` one-token steps.
double decode_rate(const ServedBase& base, const std::vector<std::shared_ptr<const Tenant>>& tenants, int batch,
                   int steps, unsigned threads) {
  Engine e(base, threads);
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<StepChunk> ch(batch);
  for (int i = 0; i < batch; ++i) {
    seqs.push_back(std::make_unique<Sequence>(base, tenants[i % tenants.size()], 8 + kReps * steps + 1));
    ch[i].seq = seqs.back().get();
    ch[i].tokens = {1, 10, 20, 30, 40, 50, 60, static_cast<int32_t>(i)};
    ch[i].want_logits = true;
  }
  e.step(ch);
  for (auto& c : ch) c.tokens = {7};
  const double best = bench::best_of(kReps, [&] {
    for (int s = 0; s < steps; ++s) e.step(ch);
  });
  return batch * steps / best;
}

// The naive alternative: each tenant's dense model runs its own rows, one tenant after another.
double naive_rate(const std::vector<std::unique_ptr<ServedBase>>& dense, int batch, int steps, unsigned threads) {
  const int T = static_cast<int>(dense.size());
  std::vector<std::unique_ptr<Engine>> engines;
  std::vector<std::vector<std::unique_ptr<Sequence>>> seqs(T);
  std::vector<std::vector<StepChunk>> ch(T);
  for (int t = 0; t < T; ++t) engines.push_back(std::make_unique<Engine>(*dense[t], threads));
  for (int i = 0; i < batch; ++i) {
    const int t = i % T;
    seqs[t].push_back(std::make_unique<Sequence>(*dense[t], nullptr, 8 + kReps * steps + 1));
    StepChunk c;
    c.seq = seqs[t].back().get();
    c.tokens = {1, 10, 20, 30, 40, 50, 60, static_cast<int32_t>(i)};
    c.want_logits = true;
    ch[t].push_back(std::move(c));
  }
  for (int t = 0; t < T; ++t) engines[t]->step(ch[t]);
  for (auto& v : ch)
    for (auto& c : v) c.tokens = {7};
  const double best = bench::best_of(kReps, [&] {
    for (int s = 0; s < steps; ++s)
      for (int t = 0; t < T; ++t) engines[t]->step(ch[t]);
  });
  return batch * steps / best;
}

// base + δ̂ as a dense fp32 model: what `apply` would give, held as the naive server holds it.
std::unique_ptr<ServedBase> dense_copy(const std::string& base_dir, const Tenant& t) {
  auto d = load_served_base(base_dir);
  const LlamaConfig& c = d->config;
  auto add = [&](const DeltaProduct* p, float* w) {
    if (!p) return;
    std::vector<float> row(p->cols());
    for (uint64_t r = 0; r < p->rows(); ++r) {
      p->decode_row(r, row.data());
      for (uint64_t k = 0; k < p->cols(); ++k) w[r * p->cols() + k] += row[k];
    }
  };
  for (uint64_t l = 0; l < c.layers; ++l) {
    const TenantLayer& L = t.layers[l];
    LayerWeights& W = d->w.layers[l];
    add(L.q.get(), W.wq), add(L.k.get(), W.wk), add(L.v.get(), W.wv), add(L.o.get(), W.wo);
    add(L.gate.get(), W.wg), add(L.up.get(), W.wu), add(L.down.get(), W.wd);
  }
  add(t.embed.get(), d->w.embed);
  if (!c.tie_embeddings) add(t.lm_head.get(), d->w.lm_head);
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string size = argc > 1 ? argv[1] : "medium";
  unsigned threads = argc > 2 ? static_cast<unsigned>(std::stoi(argv[2])) : 0;
  if (!threads) threads = std::max(1u, std::thread::hardware_concurrency());
  const int steps = argc > 3 ? std::stoi(argv[3]) : 4;
  const fs::path dir = fs::temp_directory_path() / ("deltakit_bench_serve_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  FixtureOptions fo = fixture_preset(size);
  write_llama_fixture(fo, (dir / "base").string(), (dir / "ft").string(), true);
  CompressOptions co;
  co.base = (dir / "base").string(), co.finetuned = (dir / "ft").string(), co.out = (dir / "bd.h5").string();
  co.recipe = "bitdelta";
  const CompressReport rep = run_compress(co);
  auto base = load_served_base(co.base);
  std::vector<std::shared_ptr<const Tenant>> tenants;
  for (int i = 0; i < 64; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "t%d", i);
    tenants.push_back(load_tenant(*base, name, co.out));
  }
  const double base_bytes = double(base->params.data().size()) * 4, tenant_bytes = double(tenants[0]->bytes);
  std::printf("bench_serve: %s preset, %.1f M parameters, %u threads, best of 3 x %d decode steps per figure\n",
              size.c_str(), base_bytes / 4e6, threads, steps);
  std::printf("adapter: bitdelta, %.2f MB on disk, %.2f MB held per tenant (fp32 base %.1f MB)\n",
              double(rep.adapter_bytes) / 1e6, tenant_bytes / 1e6, base_bytes / 1e6);
  if (argc > 4) {  // profiling aid: one configuration, many steps (0: the base; argv[5]: another recipe)
    const int T = std::stoi(argv[4]);
    if (argc > 5) {
      CompressOptions c2 = co;
      c2.recipe = argv[5], c2.out = (dir / "other.h5").string(), c2.overwrite = true;
      run_compress(c2);
      for (int i = 0; i < T; ++i) tenants[i] = load_tenant(*base, "p" + std::to_string(i), c2.out);
    }
    std::vector<std::shared_ptr<const Tenant>> ts(tenants.begin(), tenants.begin() + std::max(T, 1));
    if (T == 0) ts = {nullptr};
    std::printf("batch 64, %d tenants: %.1f tok/s\n", T, decode_rate(*base, ts, 64, steps, threads));
    fs::remove_all(dir);
    return 0;
  }
  std::printf("\n%-7s %-8s %12s %12s %12s %10s %10s\n", "batch", "tenants", "served tok/s", "base tok/s", "naive tok/s",
              "vs base", "vs naive");
  for (int batch : {16, 64}) {
    const double ceiling = decode_rate(*base, {nullptr}, batch, steps, threads);
    for (int T : {1, 4, 16, 64}) {
      if (T > batch) continue;
      std::vector<std::shared_ptr<const Tenant>> ts(tenants.begin(), tenants.begin() + T);
      const double served = decode_rate(*base, ts, batch, steps, threads);
      double naive = 0;
      if (T == 16) {  // 16 dense models (fp32, as the naive server holds them)
        std::vector<std::unique_ptr<ServedBase>> dense;
        for (int t = 0; t < T; ++t) dense.push_back(dense_copy(co.base, *ts[t]));
        naive = naive_rate(dense, batch, steps, threads);
      }
      char nv[32] = "-", vs[32] = "-";
      if (naive) std::snprintf(nv, sizeof nv, "%.1f", naive), std::snprintf(vs, sizeof vs, "%.2fx", served / naive);
      std::printf("%-7d %-8d %12.1f %12.1f %12s %10.2f %10s\n", batch, T, served, ceiling, nv, served / ceiling, vs);
      std::fflush(stdout);
    }
  }
  // the other codecs' products: 16 tenants at batch 64
  std::printf("\n%-34s %10s %12s %12s %10s\n", "recipe (16 tenants, batch 64)", "held MB", "served tok/s", "base tok/s",
              "vs base");
  for (const char* recipe :
       {"bitdelta", "quant:bits=4", "lowrank:rank=16", "dare:p=0.9", "bitdelta + cherry:frac=0.01"}) {
    CompressOptions c2 = co;
    c2.recipe = recipe, c2.out = (dir / "other.h5").string(), c2.overwrite = true;
    run_compress(c2);
    std::vector<std::shared_ptr<const Tenant>> ts;
    for (int i = 0; i < 16; ++i) ts.push_back(load_tenant(*base, "o" + std::to_string(i), c2.out));
    const double ceiling = decode_rate(*base, {nullptr}, 64, steps, threads),
                 served = decode_rate(*base, ts, 64, steps, threads);
    std::printf("%-34s %10.2f %12.1f %12.1f %10.2f\n", recipe, double(ts[0]->bytes) / 1e6, served, ceiling,
                served / ceiling);
    std::fflush(stdout);
  }
  // memory: the served process against 16 dense checkpoints
  const double kv_per_seq = double(base->config.layers * base->config.max_seq * base->config.kv_dim()) * 8;
  std::printf(
      "\nmemory, 16 tenants: base %.1f MB + adapters %.1f MB = %.1f MB; 16 dense fp32 models %.1f MB (%.1fx); "
      "KV cache %.2f MB per full-context sequence\n",
      base_bytes / 1e6, 16 * tenant_bytes / 1e6, (base_bytes + 16 * tenant_bytes) / 1e6, 16 * base_bytes / 1e6,
      16 * base_bytes / (base_bytes + 16 * tenant_bytes), kv_per_seq / 1e6);
  // thread scaling at batch 64 over 16 tenants
  std::vector<std::shared_ptr<const Tenant>> t16(tenants.begin(), tenants.begin() + 16);
  const double one = decode_rate(*base, t16, 64, steps, 1), all = decode_rate(*base, t16, 64, steps, threads);
  std::printf("threads: batch 64 over 16 tenants, %.1f tok/s on 1 thread, %.1f on %u (%.2fx)\n", one, all, threads,
              all / one);
  fs::remove_all(dir);
  return 0;
}
