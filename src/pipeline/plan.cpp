#include "src/pipeline/plan.h"

#include <zstd.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "src/codec/tensor_codec.h"
#include "src/core/error.h"
#include "src/eval/divergence.h"
#include "src/eval/evaluate.h"
#include "src/eval/prompts.h"
#include "src/eval/skills.h"
#include "src/pipeline/diff.h"
#include "src/pipeline/importance_files.h"

namespace deltakit {

namespace {

uint64_t zstd_bytes(std::span<const uint8_t> b, int level) {
  std::vector<uint8_t> out(ZSTD_compressBound(b.size()));
  const size_t n = ZSTD_compress(out.data(), out.size(), b.data(), b.size(), level);
  if (ZSTD_isError(n)) throw Error(ErrorCode::Io, "", std::string("zstd: ") + ZSTD_getErrorName(n));
  return n;
}

struct Coded {
  std::vector<float> recon;  // δ̂
  uint64_t bytes = 0;        // estimated stored bytes
};

// Every planned tensor under every candidate, and the fine-tune with chosen families replaced.
class PlanModels {
 public:
  PlanModels(const PlanOptions& o, const std::vector<Recipe>& recipes)
      : base_(load_llama(o.base)), ft_(load_llama(o.finetuned)) {
    require_same_layout(base_, ft_, o.finetuned, "the base " + o.base);
    ImportanceFiles importance;
    std::vector<float> delta;
    for (const ParamSlice& s : ft_.slices()) {
      delta.resize(s.numel);
      for (uint64_t i = 0; i < s.numel; ++i) delta[i] = ft_.data()[s.offset + i] - base_.data()[s.offset + i];
      const auto raw = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(delta.data()), delta.size() * 4);
      if (s.shape.size() != 2) {  // norms and biases stay raw
        fixed_bytes_ += zstd_bytes(raw, o.zstd_level);
        continue;
      }
      planned_.push_back(&s);
      const std::string family = tensor_family(s.name);
      const auto at = std::find(families_.begin(), families_.end(), family);
      family_of_.push_back(static_cast<size_t>(at - families_.begin()));
      if (at == families_.end()) families_.push_back(family);
      std::vector<Coded> per;
      for (const Recipe& r : recipes) {
        Coded c;
        if (r.is_raw()) {
          c.recon = delta, c.bytes = zstd_bytes(raw, o.zstd_level);
        } else {
          TensorDelta t{s.name, ft_.config().dtype, s.shape, delta, {}, 0, nullptr};
          std::vector<float> h;
          if (r.cherry && r.cherry->importance != "magnitude") {
            h = importance.load(*r.cherry, s.name, s.numel, s.shape[1]);
            t.importance = {
                r.cherry->importance == "fisher" ? Importance::Kind::PerElement : Importance::Kind::PerColumn, h};
          }
          Encoded e = encode_tensor(r, t);
          for (const Part& p : e.parts) c.bytes += zstd_bytes(p.bytes, o.zstd_level);
          c.recon = decode_tensor(e.attrs, EncodedSource(e), s.shape, t.dtype, "tensor '" + s.name + "'");
        }
        per.push_back(std::move(c));
      }
      coded_.push_back(std::move(per));
    }
  }

  const LlamaParams& finetuned() const { return ft_; }
  const std::vector<std::string>& families() const { return families_; }
  uint64_t fixed_bytes() const { return fixed_bytes_; }
  size_t tensors() const { return planned_.size(); }
  const ParamSlice& slice(size_t t) const { return *planned_[t]; }
  size_t family_of(size_t t) const { return family_of_[t]; }  // index into families()
  const Coded& coded(size_t t, size_t candidate) const { return coded_[t][candidate]; }
  // The fine-tune with each family f compressed by candidate choice[f] (-1: left exact).
  LlamaParams assemble(const std::vector<int>& choice) const {
    LlamaParams m = ft_;
    for (size_t t = 0; t < planned_.size(); ++t) {
      const size_t f = family_of_[t];
      if (choice[f] < 0) continue;
      const ParamSlice& s = *planned_[t];
      const std::vector<float>& r = coded_[t][static_cast<size_t>(choice[f])].recon;
      for (uint64_t i = 0; i < s.numel; ++i) m.data()[s.offset + i] = base_.data()[s.offset + i] + r[i];
    }
    return m;
  }

 private:
  LlamaParams base_, ft_;
  std::vector<const ParamSlice*> planned_;
  std::vector<std::string> families_;
  std::vector<size_t> family_of_;
  std::vector<std::vector<Coded>> coded_;
  uint64_t fixed_bytes_ = 0;
};

// Least summed damage with Σ bytes <= capacity: one candidate per family (multiple-choice
// knapsack) by dynamic programming over bytes in steps of `unit` (1 below 64 KiB). Sizes are
// rounded down, so the true optimum stays within reach and an answer that fits is exact; one
// that the rounding let overflow is retried with one step less.
std::vector<int> allocate(const std::vector<std::vector<PlanCell>>& cells, uint64_t capacity) {
  const size_t F = cells.size();
  const uint64_t unit = std::max<uint64_t>(1, capacity / 65536);
  const double inf = std::numeric_limits<double>::infinity();
  for (size_t cap = static_cast<size_t>(capacity / unit);; --cap) {
    std::vector<std::vector<double>> best(F + 1, std::vector<double>(cap + 1, inf));
    std::vector<std::vector<int>> pick(F, std::vector<int>(cap + 1, -1));
    std::fill(best[0].begin(), best[0].end(), 0.0);
    for (size_t f = 0; f < F; ++f)
      for (size_t b = 0; b <= cap; ++b)
        for (size_t c = 0; c < cells[f].size(); ++c) {
          const uint64_t need = cells[f][c].bytes / unit;
          if (need > b || best[f][b - need] == inf) continue;
          const double d = best[f][b - need] + cells[f][c].damage;
          // ties: the smaller candidate (fewer bytes)
          const bool better =
              d < best[f + 1][b] ||
              (d == best[f + 1][b] && cells[f][c].bytes < cells[f][static_cast<size_t>(pick[f][b])].bytes);
          if (better) best[f + 1][b] = d, pick[f][b] = static_cast<int>(c);
        }
    if (best[F][cap] == inf) return {};
    std::vector<int> choice(F);
    uint64_t bytes = 0;
    for (size_t f = F, b = cap; f-- > 0;) {
      choice[f] = pick[f][b];
      const PlanCell& k = cells[f][static_cast<size_t>(choice[f])];
      b -= static_cast<size_t>(k.bytes / unit), bytes += k.bytes;
    }
    if (bytes <= capacity || cap == 0) return bytes <= capacity ? choice : std::vector<int>{};
  }
}

}  // namespace

PlanReport run_plan(const PlanOptions& o) {
  if (o.mode != "fdt" && o.mode != "hessian") throw Error(ErrorCode::Usage, "", "--mode must be fdt or hessian");
  std::vector<std::string> texts = {"raw"};  // candidate 0: raw, whose reconstruction is δ itself
  std::vector<Recipe> recipes = {parse_recipe("raw")};
  for (const std::string& t : o.candidates) {
    Recipe r = parse_recipe(t, o.seed);
    if (r.is_raw()) continue;
    if (!model_scope_key(r).empty())
      throw Error(ErrorCode::Usage, "", "candidate \"" + t + "\": scope=model budgets are not planned per family");
    texts.push_back(r.canonical()), recipes.push_back(std::move(r));
  }
  if (!o.budget_bytes && o.budget_like.empty()) throw Error(ErrorCode::Usage, "", "give --budget");
  for (const std::string& task : o.tasks)
    if (!is_skill(task)) throw Error(ErrorCode::Usage, "", "unknown skill \"" + task + "\"");
  const PlanModels models(o, recipes);
  const LlamaParams& ft = models.finetuned();
  const auto prompts = make_prompts(o.prompts, o.prompt_count, o.prompt_len, ft.config().vocab);
  DivergenceOptions dopt;
  dopt.new_tokens = o.new_tokens;
  const ReferenceText reference = reference_text(ft, prompts, dopt);  // the fine-tune's text, generated once
  auto measure = [&](const std::string& label, const std::vector<int>& choice, uint64_t bytes) {
    PlanMeasure m;
    m.label = label, m.bytes = bytes;
    const LlamaParams model = models.assemble(choice);
    const DivergenceReport d = divergent_tokens(ft, reference, model, dopt);
    m.fdt_mean = d.fdt_mean, m.sdt_mean = d.sdt_mean, m.kl_mean = d.kl_mean;
    for (const std::string& task : o.tasks)
      m.accuracy.push_back(evaluate_skill(model, task, o.task_samples, kEvalStream).accuracy());
    return m;
  };

  PlanReport rep;
  rep.families = models.families(), rep.candidates = texts, rep.fixed_bytes = models.fixed_bytes();
  const size_t F = rep.families.size(), C = recipes.size();
  std::vector<std::vector<PlanCell>> cells(F, std::vector<PlanCell>(C));
  ImportanceFiles fisher;
  for (size_t f = 0; f < F; ++f)
    for (size_t c = 0; c < C; ++c) cells[f][c] = {rep.families[f], texts[c], 0, 0.0, static_cast<double>(o.new_tokens)};
  for (size_t t = 0; t < models.tensors(); ++t) {
    const size_t f = models.family_of(t);
    const ParamSlice& s = models.slice(t);
    std::vector<float> h;
    if (o.mode == "hessian" && !o.fisher.empty()) h = fisher.load(o.fisher, "fisher", s.name, s.numel, s.shape[1]);
    const std::vector<float>& delta = models.coded(t, 0).recon;  // raw, candidate 0: δ itself
    for (size_t c = 0; c < C; ++c) {
      const Coded& k = models.coded(t, c);
      cells[f][c].bytes += k.bytes;
      if (o.mode != "hessian") continue;
      double e = 0;
      for (uint64_t i = 0; i < s.numel; ++i) {
        const double d = static_cast<double>(delta[i]) - k.recon[i];
        e += (h.empty() ? 1.0 : h[i]) * d * d;
      }
      cells[f][c].damage += e;
    }
  }
  auto bytes_of_choice = [&](const std::vector<int>& ch) {
    uint64_t b = rep.fixed_bytes;
    for (size_t f = 0; f < F; ++f) b += cells[f][static_cast<size_t>(ch[f])].bytes;
    return b;
  };
  auto uniform = [&](size_t c) { return std::vector<int>(F, static_cast<int>(c)); };
  rep.budget = o.budget_bytes;
  if (!o.budget_like.empty()) {
    const std::string like = parse_recipe(o.budget_like, o.seed).canonical();
    auto it = std::find(texts.begin(), texts.end(), like);
    if (it == texts.end())
      throw Error(ErrorCode::Usage, "", "--budget uniform:" + o.budget_like + " is not a candidate");
    rep.budget = bytes_of_choice(uniform(static_cast<size_t>(it - texts.begin())));
  }
  if (rep.budget <= rep.fixed_bytes)
    throw Error(ErrorCode::Usage, "",
                "--budget " + std::to_string(rep.budget) + " bytes is below the 1-D tensors' raw size (" +
                    std::to_string(rep.fixed_bytes) + " bytes)");
  uint64_t least = rep.fixed_bytes;  // checked before the model runs: the cheapest candidate everywhere
  for (const auto& row : cells)
    least += std::min_element(row.begin(), row.end(), [](const PlanCell& x, const PlanCell& y) {
               return x.bytes < y.bytes;
             })->bytes;
  if (rep.budget < least)
    throw Error(ErrorCode::Usage, "",
                "--budget " + std::to_string(rep.budget) +
                    " bytes: no choice of the candidates fits (the smallest is " + std::to_string(least) + " bytes)");
  if (o.mode == "fdt")
    for (size_t f = 0; f < F; ++f)
      for (size_t c = 1; c < C; ++c) {  // raw: no damage
        std::vector<int> only(F, -1);
        only[f] = static_cast<int>(c);
        const DivergenceReport d = divergent_tokens(ft, reference, models.assemble(only), dopt);
        cells[f][c].fdt = d.fdt_mean, cells[f][c].damage = d.kl_mean;
      }
  for (const auto& row : cells) rep.cells.insert(rep.cells.end(), row.begin(), row.end());

  std::vector<int> choice = allocate(cells, rep.budget - rep.fixed_bytes);
  if (choice.empty())
    throw Error(ErrorCode::Usage, "",
                "--budget " + std::to_string(rep.budget) + " bytes: no choice of the candidates fits");
  for (int c : choice) rep.allocated.push_back(texts[static_cast<size_t>(c)]);
  rep.plan = measure("plan", choice, bytes_of_choice(choice));
  for (size_t c = 0; c < C; ++c) rep.uniform.push_back(measure(texts[c], uniform(c), bytes_of_choice(uniform(c))));
  // A uniform recipe is one of the plans too: when one that fits measures better (FDT, then KL)
  // than the allocation's mix, it is the plan.
  for (size_t c = 0; c < C; ++c) {
    const PlanMeasure& u = rep.uniform[c];
    if (u.bytes <= rep.budget &&
        (u.fdt_mean > rep.plan.fdt_mean || (u.fdt_mean == rep.plan.fdt_mean && u.kl_mean < rep.plan.kl_mean))) {
      choice = uniform(c);
      rep.plan = u;
      rep.plan.label = "plan (= uniform " + texts[c] + ")";
    }
  }
  rep.rules_yaml = "# deltakit plan (" + o.mode + "): " + o.finetuned + " over " + o.base + ", budget " +
                   std::to_string(rep.budget) + " bytes\ndefault: raw\nrules:\n";
  for (size_t f = 0; f < F; ++f) {
    const size_t c = static_cast<size_t>(choice[f]);
    rep.choice.push_back(texts[c]);
    if (c == 0) continue;
    // a family is its name with the layer index taken out: "*.<family>" matches it in every layer
    const bool layered = ft.find(rep.families[f]) == nullptr;
    rep.rules_yaml += "  - match: \"" + (layered ? "*." + rep.families[f] : rep.families[f]) + "\"\n    recipe: \"" +
                      texts[c] + "\"\n";
  }
  return rep;
}

}  // namespace deltakit
