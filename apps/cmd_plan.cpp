// deltakit plan: a recipe per tensor family, chosen by measured damage under a size budget,
// written as a rules file for compress --rules (src/pipeline/plan.h).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "formats/checkpoint.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/model/kernels.h"
#include "src/pipeline/plan.h"

namespace deltakit::cli {

int cmd_plan(const Args& args) {
  po::options_description opts("plan options");
  opts.add_options()("base", po::value<std::string>(), "base model folder")("finetuned", po::value<std::string>(),
                                                                            "fine-tuned model folder")(
      "candidates",
      po::value<std::string>()->default_value("quant:bits=8;quant:bits=4;bitdelta;dare:p=0.9;dare:p=0.99"),
      "candidate recipes separated by ';' (raw is always one)")(
      "budget", po::value<std::string>(), "adapter size budget: a size (300KB) or uniform:RECIPE (that recipe's size)")(
      "mode", po::value<std::string>()->default_value("fdt"), "fdt (measured divergence) | hessian (cheap)")(
      "fisher", po::value<std::string>()->default_value(""), "--mode hessian: a fisher importance file (else H = 1)")(
      "prompts-from", po::value<std::string>()->default_value("corpus"),
      "corpus | skill:NAME | tokens:FILE | lines:FILE")("prompts", po::value<int64_t>()->default_value(32),
                                                        "prompts for FDT")(
      "prompt-len", po::value<int64_t>()->default_value(16), "tokens per prompt (corpus, tokens:FILE)")(
      "new-tokens", po::value<int64_t>()->default_value(32), "N: tokens the fine-tune continues each prompt by")(
      "task", po::value<std::vector<std::string>>()->composing(),
      "also measure exact match on this skill (repeatable)")("samples", po::value<int64_t>()->default_value(200),
                                                             "examples per --task")(
      "seed", po::value<uint64_t>()->default_value(0), "default seed of dare")(
      "threads", po::value<int>()->default_value(0), "threads (0: all cores)")("out", po::value<std::string>(),
                                                                               "rules file to write (YAML)")(
      "overwrite", po::bool_switch(), "replace an existing --out")("json", po::bool_switch(), "end with a JSON object");
  po::variables_map vm;
  if (!parse("plan", "--base B --finetuned F --budget SIZE|uniform:RECIPE --out RULES.yaml [--mode fdt|hessian]", opts,
             {}, args, vm))
    return 0;
  require(vm, {"base", "finetuned", "budget", "out"});
  kernels::set_threads(vm["threads"].as<int>());
  PlanOptions o;
  o.base = vm["base"].as<std::string>(), o.finetuned = vm["finetuned"].as<std::string>();
  const std::string candidates = vm["candidates"].as<std::string>();
  for (size_t at = 0; at <= candidates.size();) {
    const size_t end = std::min(candidates.find(';', at), candidates.size());
    if (end > at) o.candidates.push_back(candidates.substr(at, end - at));
    at = end + 1;
  }
  const std::string budget = vm["budget"].as<std::string>();
  if (budget.rfind("uniform:", 0) == 0)
    o.budget_like = budget.substr(8);
  else
    o.budget_bytes = parse_byte_size(budget);
  o.mode = vm["mode"].as<std::string>(), o.fisher = vm["fisher"].as<std::string>();
  o.prompts = vm["prompts-from"].as<std::string>(), o.prompt_count = vm["prompts"].as<int64_t>();
  o.prompt_len = vm["prompt-len"].as<int64_t>(), o.new_tokens = vm["new-tokens"].as<int64_t>();
  if (vm.count("task")) o.tasks = vm["task"].as<std::vector<std::string>>();
  o.task_samples = vm["samples"].as<int64_t>(), o.seed = vm["seed"].as<uint64_t>();
  const std::string out = vm["out"].as<std::string>();
  check_output_path(out, std::vector<std::string>{o.base, o.finetuned}, vm["overwrite"].as<bool>());

  const PlanReport r = run_plan(o);
  write_file_atomically(out, r.rules_yaml);

  const bool hessian = o.mode == "hessian";
  std::printf("damage per family (%s), estimated bytes:\n%-28s", hessian ? "sum H (delta - recon)^2" : "mean KL, FDT",
              "family");
  for (size_t c = 0; c < r.candidates.size(); ++c) std::printf(" %22.22s", r.candidates[c].c_str());
  std::printf("\n");
  for (size_t f = 0; f < r.families.size(); ++f) {
    std::printf("%-28s", r.families[f].c_str());
    for (size_t c = 0; c < r.candidates.size(); ++c) {
      const PlanCell& k = r.cells[f * r.candidates.size() + c];
      if (hessian)
        std::printf(" %11.4g %10s", k.damage, human_bytes(static_cast<double>(k.bytes)).c_str());
      else
        std::printf(" %7.3g %5.1f %8s", k.damage, k.fdt, human_bytes(static_cast<double>(k.bytes)).c_str());
    }
    std::printf("   -> %s\n", r.choice[f].c_str());
  }
  std::printf("budget %s (1-D tensors raw: %s); rules -> %s\n", human_bytes(static_cast<double>(r.budget)).c_str(),
              human_bytes(static_cast<double>(r.fixed_bytes)).c_str(), out.c_str());
  std::printf("%-44s %10s %8s %7s %8s", "measured (whole model)", "bytes", "FDT", "SDT", "KL");
  for (const auto& t : o.tasks) std::printf(" %7s", t.c_str());
  std::printf("\n");
  auto row = [&](const PlanMeasure& m, bool fits) {
    std::printf("%-44.44s %10s %8.2f %7.4f %8.4f", (m.label + (fits ? "" : " (over budget)")).c_str(),
                human_bytes(static_cast<double>(m.bytes)).c_str(), m.fdt_mean, m.sdt_mean, m.kl_mean);
    for (double a : m.accuracy) std::printf(" %6.1f%%", 100.0 * a);
    std::printf("\n");
  };
  row(r.plan, true);
  for (const auto& u : r.uniform) row(u, u.bytes <= r.budget);
  if (vm["json"].as<bool>()) {
    auto measure_json = [](const PlanMeasure& m) {
      return nlohmann::ordered_json{{"label", m.label},       {"bytes", m.bytes},     {"fdt_mean", m.fdt_mean},
                                    {"sdt_mean", m.sdt_mean}, {"kl_mean", m.kl_mean}, {"accuracy", m.accuracy}};
    };
    nlohmann::ordered_json j{{"mode", o.mode}, {"budget", r.budget}, {"fixed_bytes", r.fixed_bytes}, {"rules", out}};
    j["families"] = r.families, j["candidates"] = r.candidates, j["choice"] = r.choice, j["allocated"] = r.allocated;
    j["cells"] = nlohmann::ordered_json::array();
    for (const auto& k : r.cells)
      j["cells"].push_back(
          {{"family", k.family}, {"recipe", k.recipe}, {"bytes", k.bytes}, {"damage", k.damage}, {"fdt", k.fdt}});
    j["plan"] = measure_json(r.plan);
    j["uniform"] = nlohmann::ordered_json::array();
    for (const auto& u : r.uniform) j["uniform"].push_back(measure_json(u));
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace deltakit::cli
