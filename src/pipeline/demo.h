// `deltakit demo`: the main job on the embedded default. Trains a base on the synthetic corpus,
// fine-tunes it on each skill, compresses every fine-tune with a set of recipes, applies each
// adapter back onto the base and measures the result: exact-match accuracy on the skill,
// held-out perplexity, adapter size and ratio. Models already in `out` are reused unless retrain.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace deltakit {

// The base model's folder under `out`.
std::string demo_base_dir(const std::string& out);

struct DemoOptions {
  std::string out = "deltakit-demo";
  std::string size = "small";
  std::vector<std::string> skills;   // empty: all four
  std::vector<std::string> recipes;  // empty: the default list
  int64_t samples = 200;             // evaluation examples per skill
  bool retrain = false;
  std::function<void(const std::string&)> say;  // progress lines
};

struct DemoRow {
  std::string skill, model, recipe;  // model: "base", "fine-tune" or "adapter"
  std::string adapter_path = "";     // adapters: the file
  double accuracy = 0, perplexity = 0;
  uint64_t adapter_bytes = 0, finetune_bytes = 0;
  double ratio = 0, rel_error = 0;  // fine-tune tensor bytes / adapter bytes; ‖δ−δ̂‖/‖δ‖
  double mean_rel_delta = 0;        // mean|δ| / mean|θ| over the linear layers (fine-tunes)
};

std::vector<std::string> default_demo_recipes();
// Rows in table order; also written to out/demo.csv.
std::vector<DemoRow> run_demo(const DemoOptions& o);

}  // namespace deltakit
