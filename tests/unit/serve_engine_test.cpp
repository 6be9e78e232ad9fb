// The serving engine against the training engine on applied checkpoints: for each codec, a
// tenant computing with its compressed delta gives the logits (to fp32 rounding) and the greedy
// tokens of LlamaModel on the checkpoint `apply` writes; and a request's logits are the same bits
// alone or batched with other tenants, at 1 or 2 threads.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "src/core/philox.h"
#include "src/model/llama_model.h"
#include "src/pipeline/apply.h"
#include "src/pipeline/compress.h"
#include "src/pipeline/export_lora.h"
#include "src/serve/engine.h"

namespace deltakit {
namespace {

namespace fs = std::filesystem;

LlamaConfig tiny_config(bool qwen_tied) {
  LlamaConfig c;
  c.vocab = 260, c.dim = 64, c.hidden = 96, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.head_dim = 16;
  c.max_seq = 48;
  c.tie_embeddings = c.qkv_bias = qwen_tied;  // Qwen2's shape: q/k/v biases, lm_head tied
  return c;
}

struct Models {
  fs::path dir, base, ft;
  explicit Models(bool qwen_tied = false) {
    dir =
        fs::temp_directory_path() / ("deltakit_serve_test_" + std::to_string(::getpid()) + (qwen_tied ? "_tied" : ""));
    fs::create_directories(dir);
    base = dir / "base", ft = dir / "ft";
    LlamaParams p(tiny_config(qwen_tied));
    p.init_random(1);
    save_llama(p, base.string(), DType::F32, true);
    // the fine-tune moves every tensor, norms and embeddings included
    TensorRng rng(9, "finetune");
    for (size_t i = 0; i < p.data().size(); ++i) p.data()[i] += 0.02f * rng.normal(i);
    save_llama(p, ft.string(), DType::F32, true);
  }
  ~Models() { fs::remove_all(dir); }
  std::string adapter(const std::string& recipe, const std::string& tag) {
    CompressOptions o;
    o.base = base.string(), o.finetuned = ft.string(), o.out = (dir / (tag + ".h5")).string(), o.recipe = recipe;
    o.threads = 1;
    run_compress(o);
    return o.out;
  }
  std::string applied(const std::string& adapter, const std::string& tag) {
    ApplyOptions o;
    o.base = base.string(), o.adapter = adapter, o.out = (dir / (tag + "_applied")).string();
    run_apply(o);
    return o.out;
  }
};

Models& models(bool qwen_tied = false) {
  static Models plain(false), tied(true);
  return qwen_tied ? tied : plain;
}

const std::vector<int32_t> kPrompt = {256, 72, 101, 108, 108, 111, 44, 32, 119};

std::vector<float> served_logits(const ServedBase& b, std::shared_ptr<const Tenant> t, unsigned threads) {
  Engine e(b, threads);
  Sequence s(b, std::move(t), 32);
  std::vector<StepChunk> ch(1);
  ch[0].seq = &s, ch[0].tokens = kPrompt, ch[0].want_logits = true;
  e.step(ch);
  return ch[0].logits;
}

class ServeCodec : public ::testing::TestWithParam<const char*> {};

// A tenant loaded from `tenant_path` computes what the training engine computes on `app`.
void check_tenant(Models& m, const std::string& tenant_path, const std::string& app, const std::string& recipe) {
  auto base = load_served_base(m.base.string());
  auto tenant = load_tenant(*base, "t", tenant_path);
  EXPECT_GT(tenant->bytes, 0u);
  const std::vector<float> got = served_logits(*base, tenant, 1);
  // the reference: the training engine on the applied checkpoint
  LlamaParams ref = load_llama(app);
  LlamaModel model(ref.config());
  const int64_t T = static_cast<int64_t>(kPrompt.size());
  const float* lg = model.forward_logits(ref.view(), kPrompt.data(), 1, T);
  const uint64_t V = ref.config().vocab;
  double worst = 0, mag = 0;
  for (uint64_t i = 0; i < V; ++i) {
    worst = std::max(worst, double(std::fabs(got[i] - lg[(T - 1) * V + i])));
    mag = std::max(mag, double(std::fabs(lg[(T - 1) * V + i])));
  }
  EXPECT_LE(worst, 2e-4 * std::max(1.0, mag)) << recipe << ": served logits differ from the applied model's";
  // greedy continuation: the same tokens
  GenerateResult want = generate_greedy(ref.config(), ref.view(), {kPrompt}, 12, -1);
  Engine e(*base, 1);
  Sequence s(*base, tenant, 32);
  std::vector<int32_t> feed = kPrompt, out;
  for (int i = 0; i < 12; ++i) {
    std::vector<StepChunk> ch(1);
    ch[0].seq = &s, ch[0].tokens = feed, ch[0].want_logits = true;
    e.step(ch);
    const int32_t next =
        static_cast<int32_t>(std::max_element(ch[0].logits.begin(), ch[0].logits.end()) - ch[0].logits.begin());
    out.push_back(next);
    feed = {next};
  }
  EXPECT_EQ(out, want.tokens[0]) << recipe;
}

void check_against_applied(Models& m, const std::string& recipe) {
  std::string tag;
  for (char ch : recipe) tag += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  const std::string ad = m.adapter(recipe, tag);
  check_tenant(m, ad, m.applied(ad, tag), recipe);
}

TEST_P(ServeCodec, MatchesTheAppliedCheckpoint) { check_against_applied(models(), GetParam()); }

// Qwen2's shape: biases on q/k/v (held as vectors), lm_head tied to the embedding (whose
// product the logits use).
TEST(ServeTiedBias, MatchesTheAppliedCheckpoint) {
  for (const char* r : {"raw", "bitdelta:scale=row", "lowrank:rank=4 + cherry:frac=0.02"})
    check_against_applied(models(true), r);
}

// A PEFT LoRA tenant (exported from the fine-tune at rank 8, embeddings included) computes what
// the engine computes on base + scale·B·A, the checkpoint compress (raw, the LoRA as fine-tune)
// and apply make of it.
TEST(ServeLora, PeftTenantMatchesTheAppliedLora) {
  Models& m = models();
  ExportLoraOptions eo;
  eo.base = m.base.string(), eo.finetuned = m.ft.string(), eo.out = (m.dir / "lora").string();
  eo.rank = 8, eo.threads = 1, eo.overwrite = true;
  ASSERT_TRUE(run_export_lora(eo).complete);
  CompressOptions co;
  co.base = m.base.string(), co.finetuned = eo.out, co.out = (m.dir / "lora_raw.h5").string(), co.threads = 1;
  co.overwrite = true;
  run_compress(co);
  check_tenant(m, eo.out, m.applied(co.out, "lora"), "peft lora");
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, ServeCodec,
                         ::testing::Values("raw", "dare:p=0.9", "topk:density=0.1", "bitdelta", "bitdelta:scale=row",
                                           "bitdelta:scale=group:32", "quant:bits=4", "quant:bits=8", "lowrank:rank=8",
                                           "bitdelta + cherry:frac=0.01", "dare:p=0.5 > bitdelta:scale=row"),
                         [](const auto& info) {
                           std::string s;
                           for (const char* c = info.param; *c; ++c)
                             s += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
                           return s;
                         });

TEST(ServeBatch, LogitsAreTheSameBitsAloneOrBatched) {
  Models& m = models();
  auto base = load_served_base(m.base.string());
  std::vector<std::shared_ptr<const Tenant>> tenants = {load_tenant(*base, "a", m.adapter("bitdelta", "batch_a")),
                                                        load_tenant(*base, "b", m.adapter("quant:bits=4", "batch_b")),
                                                        load_tenant(*base, "c", m.adapter("lowrank:rank=4", "batch_c")),
                                                        nullptr};
  const std::vector<float> alone = served_logits(*base, tenants[0], 1);
  for (unsigned threads : {1u, 2u}) {
    Engine e(*base, threads);
    std::vector<std::unique_ptr<Sequence>> seqs;
    std::vector<StepChunk> ch;
    // other tenants' prompts of other lengths, our request in the middle, twice over
    for (int rep = 0; rep < 2; ++rep)
      for (size_t t = 0; t < tenants.size(); ++t) {
        seqs.push_back(std::make_unique<Sequence>(*base, tenants[t], 32));
        StepChunk c;
        c.seq = seqs.back().get();
        c.tokens = t == 0 && rep == 1 ? kPrompt : std::vector<int32_t>(3 + t + rep, static_cast<int32_t>(40 + t));
        c.want_logits = true;
        ch.push_back(std::move(c));
      }
    e.step(ch);
    EXPECT_EQ(0, std::memcmp(ch[4].logits.data(), alone.data(), alone.size() * 4)) << threads << " threads";
  }
}

}  // namespace
}  // namespace deltakit
