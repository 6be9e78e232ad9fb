// deltakit demo [--out DIR] [--size tiny|small|medium]: the main job on the embedded default —
// train a base, fine-tune it on each skill, compress and apply each fine-tune with several
// recipes, and print one table of accuracy, perplexity, size and ratio.
#include <cstdio>
#include <iostream>
#include <map>

#include "apps/cli_common.h"
#include "src/model/kernels.h"
#include "src/eval/skills.h"
#include "src/pipeline/demo.h"
#include "src/serve/offline.h"

namespace deltakit::cli {

int cmd_demo(const Args& args) {
  po::options_description opts("demo options");
  opts.add_options()("out", po::value<std::string>()->default_value("deltakit-demo"), "work folder")(
      "size", po::value<std::string>()->default_value("small"), "preset: tiny | small | medium")(
      "skill", po::value<std::vector<std::string>>()->composing(), "skills (repeatable; default all four)")(
      "recipe", po::value<std::vector<std::string>>()->composing(), "recipes (repeatable; default a set of seven)")(
      "samples", po::value<int64_t>()->default_value(200), "evaluation examples per skill")(
      "threads", po::value<int>()->default_value(0), "threads (0: all cores)")(
      "retrain", po::bool_switch(), "train the models again even if --out has them")(
      "quiet", po::bool_switch(), "no progress lines");
  po::variables_map vm;
  if (!parse("demo", "[--out DIR] [--size small]", opts, {}, args, vm)) return 0;
  kernels::set_threads(vm["threads"].as<int>());
  DemoOptions o;
  o.out = vm["out"].as<std::string>();
  o.size = vm["size"].as<std::string>();
  if (vm.count("skill")) o.skills = vm["skill"].as<std::vector<std::string>>();
  if (vm.count("recipe")) o.recipes = vm["recipe"].as<std::vector<std::string>>();
  o.samples = vm["samples"].as<int64_t>();
  o.retrain = vm["retrain"].as<bool>();
  if (!vm["quiet"].as<bool>()) o.say = [](const std::string& s) { std::cerr << "demo: " << s << std::endl; };
  const auto rows = run_demo(o);
  std::printf("%-5s %-10s %-40s %9s %8s %10s %8s %9s\n", "skill", "model", "recipe", "accuracy", "ppl", "adapter",
              "ratio", "rel.err");
  for (const auto& r : rows) {
    std::printf("%-5s %-10s %-40s %8.1f%% %8.4g %10s %8s %9s\n", r.skill.c_str(), r.model.c_str(), r.recipe.c_str(),
                100.0 * r.accuracy, r.perplexity, r.adapter_bytes ? human_bytes(double(r.adapter_bytes)).c_str() : "-",
                r.ratio > 0 ? (fixed(r.ratio, 1) + "x").c_str() : "-", r.model == "adapter" ? fixed(r.rel_error, 3).c_str() : "-");
    if (r.model == "fine-tune")
      std::printf("%-5s %-10s mean|d|/mean|w| over the linear layers: %.4f\n", "", "", r.mean_rel_delta);
  }
  std::printf("models, adapters and demo.csv in %s (base and fine-tunes are reused; --retrain to train again)\n",
              o.out.c_str());
  // the end: one server, one base, every skill's best adapter held compressed, one batch
  std::map<std::string, const DemoRow*> best;  // per skill: most accurate, then smallest
  for (const auto& r : rows)
    if (r.model == "adapter") {
      const DemoRow*& b = best[r.skill];
      if (!b || r.accuracy > b->accuracy || (r.accuracy == b->accuracy && r.adapter_bytes < b->adapter_bytes)) b = &r;
    }
  std::vector<std::pair<std::string, std::string>> adapters;
  std::vector<OfflineRequest> requests;
  std::vector<SkillExample> examples;
  for (const auto& [skill, r] : best) {
    adapters.push_back({skill, r->adapter_path});
    examples.push_back(skill_example(skill, kEvalStream, 7));
    requests.push_back({skill, examples.back().prompt, 16, {"\n"}});
  }
  if (requests.empty()) return 0;
  const auto served = serve_offline(demo_base_dir(o.out), adapters, requests, static_cast<unsigned>(kernels::threads()));
  std::printf("\nserved from one base holding %zu adapters, batched (deltakit serve, in-process):\n", adapters.size());
  for (size_t i = 0; i < served.size(); ++i)
    std::printf("  %-5s %-44s %-26s %-8s (%s held)\n", adapters[i].first.c_str(), best[adapters[i].first]->recipe.c_str(),
                (examples[i].prompt + served[i].text).c_str(), served[i].text == examples[i].answer ? "correct" : "wrong",
                human_bytes(double(served[i].adapter_bytes)).c_str());
  return 0;
}

}  // namespace deltakit::cli
