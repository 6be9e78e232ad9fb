#include "src/pipeline/recipe_rules.h"

#include <fnmatch.h>
#include <yaml-cpp/yaml.h>

#include "src/core/error.h"
#include "src/core/whole_file.h"

namespace deltakit {

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

namespace {
// The rules' JSON (stored in the adapter) in bytes; tensor names are UTF-8, so a pattern that is
// not can match nothing and cannot be stored: refused, naming `where`.
size_t json_size(const RecipeRules& r, const std::string& where) {
  try {
    return r.to_json().dump().size();
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::Usage, where, "a pattern or recipe is not valid UTF-8 text");
  }
}
}  // namespace

RecipeRules RecipeRules::single(const std::string& recipe, const std::string& only, uint64_t seed) {
  RecipeRules r;
  r.summary_ = recipe;
  if (only.empty()) {
    r.fallback_ = parse_recipe(recipe, seed);
  } else {
    r.rules_.push_back({{only}, parse_recipe(recipe, seed)});
    r.fallback_ = parse_recipe("raw");
    r.summary_ += " (only " + only + ", raw elsewhere)";
  }
  json_size(r, "--only");
  return r;
}

RecipeRules RecipeRules::from_file(const std::string& path, uint64_t seed) {
  try {
    return read_file(path, seed);
  } catch (const YAML::Exception& e) {  // a value of the wrong kind (a map where a scalar goes, ...)
    throw Error(ErrorCode::Usage, path, std::string("a value of the wrong type: ") + e.what());
  }
}

RecipeRules RecipeRules::read_file(const std::string& path, uint64_t seed) {
  auto fail = [&](const std::string& what) -> Error { return Error(ErrorCode::Usage, path, what); };
  YAML::Node doc;
  try {
    doc = YAML::Load(read_whole_file(path, "rules file", kMaxRulesBytes));
  } catch (const YAML::Exception& e) {
    throw fail(std::string("not valid YAML/JSON: ") + e.what());
  }
  if (!doc.IsMap()) throw fail("the rules file must be a mapping with 'rules' (and optionally 'default')");
  RecipeRules r;
  r.summary_ = "rules:" + path;
  auto recipe_of = [&](const YAML::Node& n, const std::string& at) {
    if (!n.IsScalar()) throw fail(at + ": 'recipe' must be a string");
    try {
      return parse_recipe(n.as<std::string>(), seed);
    } catch (const Error& e) {
      throw fail(at + ": " + e.what());
    }
  };
  r.fallback_ = parse_recipe("raw");
  for (const auto& kv : doc) {
    std::string key = kv.first.as<std::string>();
    if (key == "default") {
      r.fallback_ = recipe_of(kv.second, "default");
    } else if (key == "rules") {
      if (!kv.second.IsSequence()) throw fail("'rules' must be a list");
      size_t i = 0;
      for (const auto& rule : kv.second) {
        std::string at = "rule " + std::to_string(++i);
        if (!rule.IsMap()) throw fail(at + " is not a mapping with 'match' and 'recipe'");
        RecipeRule rr;
        bool has_recipe = false;
        for (const auto& f : rule) {
          std::string k = f.first.as<std::string>();
          if (k == "match") {
            if (f.second.IsScalar())
              rr.patterns.push_back(f.second.as<std::string>());
            else if (f.second.IsSequence())
              for (const auto& p : f.second) {
                if (!p.IsScalar()) throw fail(at + ": 'match' entries must be strings");
                rr.patterns.push_back(p.as<std::string>());
              }
            else
              throw fail(at + ": 'match' must be a glob or a list of globs");
          } else if (k == "recipe") {
            rr.recipe = recipe_of(f.second, at);
            has_recipe = true;
          } else {
            throw fail(at + ": unknown key '" + k + "' (expected match, recipe)");
          }
        }
        if (rr.patterns.empty() || !has_recipe) throw fail(at + " needs both 'match' and 'recipe'");
        for (const auto& p : rr.patterns)
          if (p.empty()) throw fail(at + ": an empty pattern");
        r.rules_.push_back(std::move(rr));
      }
    } else {
      throw fail("unknown key '" + key + "' (expected default, rules)");
    }
  }
  // the adapter keeps the rules as one root attribute, which HDF5 caps near 64 KiB: refuse now,
  // not after the whole compress has run
  if (const size_t n = json_size(r, path); n > kMaxRulesJson)
    throw fail("the rules take " + std::to_string(n) + " bytes as JSON, more than the adapter's " +
               std::to_string(kMaxRulesJson) + "-byte limit; use fewer or broader patterns");
  return r;
}

const Recipe& RecipeRules::for_tensor(const std::string& name) const {
  for (const auto& r : rules_)
    for (const auto& p : r.patterns)
      if (glob_match(p, name)) return r.recipe;
  return fallback_;
}

Json RecipeRules::to_json() const {
  Json j = Json::object();
  j["default"] = fallback_.canonical();
  j["rules"] = Json::array();
  for (const auto& r : rules_) j["rules"].push_back({{"match", r.patterns}, {"recipe", r.recipe.canonical()}});
  return j;
}

}  // namespace deltakit
