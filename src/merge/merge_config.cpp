#include "src/merge/merge_config.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <set>

#include "src/core/error.h"
#include "src/merge/methods.h"

namespace deltakit {

namespace {
const std::set<std::string>& known_params() {
  static const std::set<std::string> k = {"weight",
                                          "density",
                                          "gamma",
                                          "epsilon",
                                          "lambda",
                                          "normalize",
                                          "rescale",
                                          "int8_mask",
                                          "t",
                                          "nuslerp_flatten",
                                          "nuslerp_row_wise",
                                          "scale",
                                          "filter_wise",
                                          "select_topk",
                                          "max_iter",
                                          "tol",
                                          "normalize_weights",
                                          "eps"};
  return k;
}

[[noreturn]] void bad(const std::string& where, const std::string& what) { throw Error(ErrorCode::Usage, where, what); }

double scalar(const YAML::Node& n, const std::string& where, const std::string& key) {
  double v = 0;
  try {
    const std::string s = n.as<std::string>();
    if (s == "true") return 1.0;
    if (s == "false") return 0.0;
    v = n.as<double>();
  } catch (const YAML::Exception&) {
    bad(where, "parameter '" + key + "' must be a number (or true/false), not \"" + YAML::Dump(n) + "\"");
  }
  // YAML reads .inf and .nan as numbers; as a weight or density they make an all-inf/NaN model
  if (!std::isfinite(v)) bad(where, "parameter '" + key + "' must be finite, not " + YAML::Dump(n));
  return v;
}

std::vector<double> values(const YAML::Node& n, const std::string& where, const std::string& key) {
  if (n.IsScalar()) return {scalar(n, where, key)};
  if (n.IsSequence() && n.size() > 0) {
    std::vector<double> v;
    for (const auto& x : n) {
      if (!x.IsScalar()) bad(where, "parameter '" + key + "': a gradient is a list of numbers");
      v.push_back(scalar(x, where, key));
    }
    return v;
  }
  bad(where, "parameter '" + key + "' must be a number, a list of numbers or a list of {filter, value}");
}

ParamValue param_value(const YAML::Node& n, const std::string& where, const std::string& key) {
  // [{filter: ..., value: ...}, ...]
  if (n.IsSequence() && n.size() > 0 && n[0].IsMap()) {
    std::vector<ParamValue::Rule> rules;
    for (const auto& r : n) {
      if (!r.IsMap() || !r["value"]) bad(where, "parameter '" + key + "': every rule needs a value");
      for (const auto& kv : r) {
        const std::string k = kv.first.as<std::string>();
        if (k != "filter" && k != "value") bad(where, "parameter '" + key + "': unknown rule key '" + k + "'");
      }
      rules.push_back({r["filter"] ? r["filter"].as<std::string>() : "", values(r["value"], where, key)});
    }
    return ParamValue(std::move(rules));
  }
  return ParamValue(std::vector<ParamValue::Rule>{{"", values(n, where, key)}});
}

std::map<std::string, ParamValue> params_of(const YAML::Node& n, const std::string& where, const std::string& who) {
  std::map<std::string, ParamValue> out;
  if (!n) return out;
  if (!n.IsMap()) bad(where, who + " parameters must be a mapping");
  for (const auto& kv : n) {
    const std::string k = kv.first.as<std::string>();
    if (!known_params().count(k)) {
      std::string list;
      for (const auto& x : known_params()) list += (list.empty() ? "" : ", ") + x;
      bad(where, who + " has unknown parameter '" + k + "' (" + list + ")");
    }
    out[k] = param_value(kv.second, where, k);
  }
  return out;
}
// `slices:` (layer stacking): the sources of every slice, checked against the method.
MergeConfig read_slices(const YAML::Node& root, MergeConfig c, const std::string& where) {
  if (root["models"]) bad(where, "give either 'models' or 'slices', not both");
  const MergeMethod& method = merge_method(c.method);
  const YAML::Node slices = root["slices"];
  if (!slices.IsSequence() || slices.size() == 0) bad(where, "slices must list at least one slice");
  std::set<std::string> seen;
  for (const auto& sl : slices) {
    if (!sl.IsMap() || !sl["sources"] || !sl["sources"].IsSequence() || sl["sources"].size() == 0)
      bad(where, "every slice needs a list of sources");
    for (const auto& kv : sl)
      if (kv.first.as<std::string>() != "sources")
        bad(where, "a slice has unknown key '" + kv.first.as<std::string>() + "' (sources)");
    MergeSlice slice;
    int non_base = 0;
    bool has_base = false;
    for (const auto& src : sl["sources"]) {
      if (!src.IsMap() || !src["model"] || !src["layer_range"])
        bad(where, "every source of a slice needs 'model' and 'layer_range'");
      SliceSource s;
      s.path = src["model"].as<std::string>();
      for (const auto& kv : src) {
        const std::string k = kv.first.as<std::string>();
        if (k != "model" && k != "layer_range" && k != "parameters")
          bad(where, "slice source " + s.path + ": unknown key '" + k + "'");
      }
      const YAML::Node r = src["layer_range"];
      if (!r.IsSequence() || r.size() != 2) bad(where, "slice source " + s.path + ": layer_range is [begin, end]");
      s.begin = r[0].as<int>(), s.end = r[1].as<int>();
      if (s.begin < 0 || s.end <= s.begin)
        bad(where, "slice source " + s.path + ": layer_range [" + std::to_string(s.begin) + ", " +
                       std::to_string(s.end) + "] is empty or negative");
      s.params = params_of(src["parameters"], where, "slice source " + s.path);
      if (!slice.sources.empty() && s.end - s.begin != slice.sources[0].end - slice.sources[0].begin)
        bad(where, "the sources of a slice must span the same number of layers");
      const bool is_base = s.path == c.base_model;
      has_base |= is_base;
      non_base += !is_base;
      if (!is_base && method.needs_weight && !s.params.count("weight") && !c.params.count("weight"))
        bad(where, "slice source " + s.path + " has no weight (mergekit requires one)");
      if (seen.insert(s.path).second && !is_base) c.models.push_back({s.path, {}});
      slice.sources.push_back(std::move(s));
    }
    if (method.kind == MergeKind::Passthrough) {
      if (slice.sources.size() != 1) bad(where, "passthrough takes exactly one source per slice");
    } else {
      if (method.needs_base && !has_base)
        bad(where, c.method + " needs base_model among every slice's sources (mergekit merges the sources only)");
      if (non_base < method.models_min || non_base > method.models_max)
        bad(where, c.method + " cannot merge " + std::to_string(non_base) + " source(s) besides base_model in a slice");
    }
    c.slices.push_back(std::move(slice));
  }
  if (method.kind == MergeKind::Passthrough) {
    // a passthrough source that is the base is a model like any other
    c.models.clear();
    std::set<std::string> again;
    for (const auto& sl : c.slices)
      for (const auto& s : sl.sources)
        if (again.insert(s.path).second) c.models.push_back({s.path, {}});
    c.base_model.clear();
  }
  if (method.kind == MergeKind::NearSwap && !has_merge_param(c, -1, "t")) bad(where, "nearswap needs the parameter t");
  if (method.kind == MergeKind::Slerp && !has_merge_param(c, -1, "t")) bad(where, "slerp needs the parameter t");
  return c;
}

MergeConfig read_merge_config(const std::string& text, const std::string& where) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    bad(where, std::string("not valid YAML: ") + e.what());
  }
  if (!root.IsMap()) bad(where, "a merge config is a YAML mapping with merge_method and models");
  MergeConfig c;
  c.source_text = text;
  static const std::set<std::string> top = {
      "merge_method", "base_model", "models", "parameters", "dtype",         "tokenizer_source", "seed",
      "rescale_norm", "out_dtype",  "slices", "name",       "chat_template", "tokenizer"};
  for (const auto& kv : root) {
    const std::string k = kv.first.as<std::string>();
    if (!top.count(k)) bad(where, "unknown key '" + k + "'");
  }
  if (!root["merge_method"]) bad(where, "merge_method is missing");
  c.method = root["merge_method"].as<std::string>();
  try {
    (void)merge_method(c.method);
  } catch (const Error& e) {
    bad(where, e.message());
  }
  if (root["base_model"]) c.base_model = root["base_model"].as<std::string>();
  if (root["dtype"]) c.dtype = root["dtype"].as<std::string>();
  if (root["out_dtype"]) c.dtype = root["out_dtype"].as<std::string>();
  if (!c.dtype.empty() && c.dtype != "float32" && c.dtype != "float16" && c.dtype != "bfloat16")
    bad(where, "dtype must be float32, float16 or bfloat16, not \"" + c.dtype + "\"");
  if (root["tokenizer_source"]) c.tokenizer_source = root["tokenizer_source"].as<std::string>();
  // mergekit builds a merged vocabulary for these (embeddings permuted, added tokens initialised);
  // refused by name rather than accepted and ignored, which wrote a model with the wrong tokenizer
  if (c.tokenizer_source == "union")
    bad(where,
        "tokenizer_source: union (a merged vocabulary) is not supported; omit it for the base's tokenizer, "
        "or name one model whose vocabulary the base shares");
  if (root["tokenizer"])
    bad(where, "a 'tokenizer' block (added tokens, embedding rules) is not supported; use tokenizer_source");
  if (root["chat_template"])
    bad(where, "chat_template is not supported; set it in the merged model's tokenizer_config.json");
  if (root["seed"]) c.seed = root["seed"].as<uint64_t>();
  if (root["rescale_norm"]) c.rescale_norm = root["rescale_norm"].as<std::string>();
  c.params = params_of(root["parameters"], where, "the global");
  if (root["slices"]) return read_slices(root, std::move(c), where);
  const YAML::Node models = root["models"];
  if (!models || !models.IsSequence() || models.size() == 0) bad(where, "models must list at least one model");
  std::set<std::string> seen;
  for (const auto& m : models) {
    MergeModelSpec s;
    if (m.IsScalar()) {
      s.path = m.as<std::string>();
    } else if (m.IsMap() && m["model"]) {
      s.path = m["model"].as<std::string>();
      for (const auto& kv : m) {
        const std::string k = kv.first.as<std::string>();
        if (k != "model" && k != "parameters") bad(where, "model entry " + s.path + ": unknown key '" + k + "'");
      }
      s.params = params_of(m["parameters"], where, "model " + s.path);
    } else {
      bad(where, "every entry of models needs a 'model' path");
    }
    if (!seen.insert(s.path).second) bad(where, "model " + s.path + " is listed twice");
    c.models.push_back(std::move(s));
  }
  // the base listed among the models (as mergekit configs often do) is the base, not a task vector
  const MergeMethod& method = merge_method(c.method);
  if (method.kind == MergeKind::Passthrough) {
    // mergekit adds base_model to the sources: a second model, which passthrough refuses
    if (!c.base_model.empty() && (c.models.size() != 1 || c.models[0].path != c.base_model))
      bad(where, "passthrough takes exactly one model; base_model would be a second (omit it)");
    c.base_model.clear();
  } else if (method.kind != MergeKind::Linear && !c.base_model.empty()) {
    std::erase_if(c.models, [&](const MergeModelSpec& s) { return s.path == c.base_model; });
  }
  if (method.needs_base && c.base_model.empty()) bad(where, c.method + " needs base_model");
  if (c.models.empty()) bad(where, "no model to merge besides base_model");
  const int k = static_cast<int>(c.models.size());
  if (k < method.models_min || k > method.models_max) {
    auto count = [](int x) {
      return x == 1 ? std::string("one model") : x == 2 ? "two models" : std::to_string(x) + " models";
    };
    const std::string want =
        (method.models_min == method.models_max ? "exactly " : "at least ") + count(method.models_min);
    bad(where, c.method + " merges " + want + " besides base_model, not " + std::to_string(k));
  }
  for (size_t i = 0; i < c.models.size(); ++i)
    if (method.needs_weight && !has_merge_param(c, static_cast<int>(i), "weight"))
      bad(where, "model " + c.models[i].path + " has no weight (mergekit requires one)");
  if (method.kind == MergeKind::NearSwap && !has_merge_param(c, -1, "t")) bad(where, "nearswap needs the parameter t");
  // mergekit reads slerp's t from the global parameters only; a model's own t would be ignored there
  if (method.kind == MergeKind::Slerp && has_merge_param(c, 0, "t") && !has_merge_param(c, -1, "t") &&
      c.models[0].params.count("t"))
    bad(where, "slerp's t is a global parameter (as in mergekit): put it under the top-level 'parameters'");
  if (method.kind == MergeKind::Slerp && !has_merge_param(c, -1, "t")) bad(where, "slerp needs the parameter t");
  return c;
}

}  // namespace

MergeConfig parse_merge_config(const std::string& text, const std::string& where) {
  try {
    return read_merge_config(text, where);
  } catch (const YAML::Exception& e) {  // a value of the wrong kind (a map where a scalar goes, ...)
    throw Error(ErrorCode::Usage, where, std::string("a value of the wrong type: ") + e.what());
  }
}

bool has_merge_param(const MergeConfig& c, int model, const std::string& key) {
  if (model >= 0 && c.models[static_cast<size_t>(model)].params.count(key)) return true;
  return c.params.count(key) > 0;
}

double merge_param(const MergeConfig& c, int model, const std::string& key, const std::string& tensor, double position,
                   double fallback) {
  return merge_param_from(model >= 0 ? &c.models[static_cast<size_t>(model)].params : nullptr, c, key, tensor, position,
                          fallback);
}

double merge_param_from(const std::map<std::string, ParamValue>* own, const MergeConfig& c, const std::string& key,
                        const std::string& tensor, double position, double fallback) {
  if (own)
    if (auto it = own->find(key); it != own->end())
      if (auto v = it->second.at(tensor, position)) return *v;
  if (auto it = c.params.find(key); it != c.params.end())
    if (auto v = it->second.at(tensor, position)) return *v;
  return fallback;
}

}  // namespace deltakit
