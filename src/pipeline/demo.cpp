#include "src/pipeline/demo.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/eval/embedded.h"
#include "src/eval/evaluate.h"
#include "src/eval/skills.h"
#include "src/pipeline/apply.h"
#include "src/pipeline/compress.h"

namespace fs = std::filesystem;

namespace deltakit {

std::vector<std::string> default_demo_recipes() {
  return {"raw",          "dare:p=0.9",    "dare:p=0.99", "bitdelta", "bitdelta:scale=row + cherry:frac=0.01",
          "quant:bits=4", "lowrank:rank=8"};
}

namespace {
std::string slug(const std::string& recipe) {
  std::string s;
  for (char c : recipe) s += std::isalnum(static_cast<unsigned char>(c)) || c == '.' ? c : '_';
  return s;
}

// mean|δ| / mean|θ_base| over the 2-D weights: the size of a fine-tune's change
double mean_rel_delta(const LlamaParams& base, const LlamaParams& ft) {
  double d = 0, b = 0;
  for (const auto& s : base.slices()) {
    if (s.shape.size() != 2) continue;
    for (uint64_t i = s.offset; i < s.offset + s.numel; ++i) {
      d += std::fabs(ft.data()[i] - base.data()[i]);
      b += std::fabs(base.data()[i]);
    }
  }
  return b > 0 ? d / b : 0;
}
}  // namespace

std::string demo_base_dir(const std::string& out) { return (std::filesystem::path(out) / "base").string(); }

std::vector<DemoRow> run_demo(const DemoOptions& o) {
  auto say = [&](const std::string& s) {
    if (o.say) o.say(s);
  };
  fs::create_directories(o.out);
  const EmbeddedPreset preset = embedded_preset(o.size);
  const std::vector<std::string> skills = o.skills.empty() ? skill_names() : o.skills;
  for (const auto& s : skills)
    if (!is_skill(s)) throw Error(ErrorCode::Usage, "", "unknown skill \"" + s + "\"");
  const std::vector<std::string> recipes = o.recipes.empty() ? default_demo_recipes() : o.recipes;
  const std::string base_dir = demo_base_dir(o.out);
  auto trained = [&](const std::string& dir) { return !o.retrain && fs::exists(fs::path(dir) / "config.json"); };
  auto step_logger = [&](const std::string& what, int64_t steps) -> Logger {
    return [=](const TrainStep& s) {
      if ((s.step + 1) % std::max<int64_t>(1, steps / 4) == 0)
        say(what + ": step " + std::to_string(s.step + 1) + "/" + std::to_string(steps) + " loss " +
            std::to_string(s.loss).substr(0, 6));
    };
  };
  if (!trained(base_dir)) {
    say("training the base (" + o.size + ": " + std::to_string(preset.base.steps) + " steps)");
    train_base(preset, base_dir, true, step_logger("base", preset.base.steps));
  } else {
    say("reusing " + base_dir);
  }
  const LlamaParams base = load_llama(base_dir);
  const std::vector<int32_t> heldout = corpus_tokens(kEvalStream, 200);
  const double base_ppl = evaluate_loss(base, heldout, static_cast<int64_t>(base.config().max_seq)).perplexity;
  std::vector<DemoRow> rows;
  for (const auto& skill : skills) {
    DemoRow r{skill, "base", "-"};
    r.accuracy = evaluate_skill(base, skill, o.samples, kEvalStream).accuracy();
    r.perplexity = base_ppl;
    rows.push_back(r);
    const std::string ft_dir = (fs::path(o.out) / ("ft-" + skill)).string();
    if (!trained(ft_dir)) {
      say("fine-tuning on " + skill + " (sft: " + std::to_string(preset.sft.steps) + " steps)");
      finetune(base_dir, skill, preset.sft, ft_dir, true, step_logger("  " + skill, preset.sft.steps));
    }
    const LlamaParams ft = load_llama(ft_dir);
    DemoRow f{skill, "fine-tune", "-"};
    f.accuracy = evaluate_skill(ft, skill, o.samples, kEvalStream).accuracy();
    f.perplexity = evaluate_loss(ft, heldout, static_cast<int64_t>(ft.config().max_seq)).perplexity;
    f.mean_rel_delta = mean_rel_delta(base, ft);
    rows.push_back(f);
    for (const auto& recipe : recipes) {
      const fs::path adapter = fs::path(o.out) / "adapters" / (skill + "-" + slug(recipe) + ".h5");
      const fs::path applied = fs::path(o.out) / "applied" / (skill + "-" + slug(recipe));
      fs::create_directories(adapter.parent_path());
      fs::create_directories(applied.parent_path());
      say("  " + skill + ": compress + apply " + recipe);
      CompressOptions co;
      co.base = base_dir, co.finetuned = ft_dir, co.out = adapter.string(), co.recipe = recipe, co.overwrite = true;
      const CompressReport c = run_compress(co);
      ApplyOptions ao;
      ao.base = base_dir, ao.adapter = adapter.string(), ao.out = applied.string(), ao.overwrite = true;
      run_apply(ao);
      const LlamaParams got = load_llama(applied.string());
      DemoRow a{skill, "adapter", recipe};
      a.adapter_path = adapter.string();
      a.accuracy = evaluate_skill(got, skill, o.samples, kEvalStream).accuracy();
      a.perplexity = evaluate_loss(got, heldout, static_cast<int64_t>(got.config().max_seq)).perplexity;
      a.adapter_bytes = c.adapter_bytes, a.finetune_bytes = c.input_bytes;
      a.ratio = c.adapter_bytes ? static_cast<double>(c.input_bytes) / static_cast<double>(c.adapter_bytes) : 0;
      a.rel_error = c.rel_error;
      rows.push_back(a);
    }
  }
  std::string csv =
      "skill,model,recipe,accuracy,perplexity,adapter_bytes,finetune_bytes,ratio,rel_error,mean_rel_delta\n";
  for (const auto& r : rows) {
    csv += r.skill + "," + r.model + ",\"" + r.recipe + "\"," + std::to_string(r.accuracy) + "," +
           std::to_string(r.perplexity) + "," + std::to_string(r.adapter_bytes) + "," +
           std::to_string(r.finetune_bytes) + "," + std::to_string(r.ratio) + "," + std::to_string(r.rel_error) + "," +
           std::to_string(r.mean_rel_delta) + "\n";
  }
  write_file_atomically((fs::path(o.out) / "demo.csv").string(), csv);
  return rows;
}

}  // namespace deltakit
