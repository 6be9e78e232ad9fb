// Which recipe encodes which tensor. Either one recipe for every tensor (optionally only those
// matching a glob, the rest raw), or a rules file (YAML or JSON, the same schema):
//
//   default: raw                     # tensors no rule matches (optional; raw if absent)
//   rules:                           # first match wins
//     - match: ["*embed_tokens*", "lm_head.weight", "*norm*"]
//       recipe: raw
//     - match: "*_proj.weight"       # a glob (fnmatch; '*' also matches '.') or a list of them
//       recipe: "bitdelta:scale=row + cherry:frac=0.005"
//
// Unknown keys, empty patterns and invalid recipes are refused, naming the file.
#pragma once

#include <string>
#include <vector>

#include "src/codec/codec_types.h"
#include "src/codec/recipe.h"

namespace deltakit {

// Rules are stored as one root attribute of the adapter; HDF5 caps one attribute near 64 KiB.
inline constexpr size_t kMaxRulesJson = 60000;
constexpr uint64_t kMaxRulesBytes = uint64_t{1} << 20;  // the YAML file itself

struct RecipeRule {
  std::vector<std::string> patterns;
  Recipe recipe;
};

class RecipeRules {
 public:
  static RecipeRules single(const std::string& recipe, const std::string& only_glob, uint64_t seed);
  static RecipeRules from_file(const std::string& path, uint64_t seed);
  const Recipe& for_tensor(const std::string& name) const;
  // {"default": canonical, "rules": [{"match": [...], "recipe": canonical}]}: stored in adapters.
  Json to_json() const;
  // Short text for the adapter's root 'recipe' attribute: the one recipe, or "rules:<file>".
  const std::string& summary() const { return summary_; }

 private:
  static RecipeRules read_file(const std::string& path, uint64_t seed);
  std::vector<RecipeRule> rules_;
  Recipe fallback_;
  std::string summary_;
};

bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace deltakit
