#include "formats/peft_lora.h"

// GCC 12 with the sanitizers reports std::regex's own std::function members as maybe
// uninitialized (a false positive inside libstdc++'s <regex>)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cmath>
#include <filesystem>
#include <optional>
#include <regex>

#include "formats/json_strict.h"
#include "src/core/error.h"
#include "src/core/whole_file.h"

namespace fs = std::filesystem;

namespace deltakit {

namespace {

constexpr const char* kPrefix = "base_model.model.";

[[noreturn]] void bad(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::AdapterInvalid, where, what);
}

// Patterns are regular expressions from the file; std::regex recurses per nesting level and
// backtracks, so a pattern longer than any module name needs is refused rather than compiled.
constexpr size_t kMaxPattern = 256;

void check_pattern(const std::string& p, const std::string& where, const std::string& what) {
  if (p.size() > kMaxPattern)
    bad(where, what + " is " + std::to_string(p.size()) + " characters long; at most " + std::to_string(kMaxPattern) +
                   " are accepted");
}

bool is_null_or_empty(const nlohmann::json& j) {
  return j.is_null() || ((j.is_array() || j.is_object() || j.is_string()) && j.empty());
}

// One factor's role, from its name: which module, A or B, linear or embedding.
struct FactorName {
  std::string module;
  bool is_a = false, embedding = false;
};

FactorName parse_factor_name(const std::string& name, const std::string& where) {
  if (name.find("lora_magnitude_vector") != std::string::npos)
    bad(where, "tensor '" + name + "' is a DoRA magnitude: DoRA adapters are not supported");
  if (name.rfind(kPrefix, 0) != 0)
    bad(where, "tensor '" + name + "' does not start with '" + kPrefix + "' as PEFT names LoRA factors");
  static const struct {
    const char* suffix;
    bool is_a, embedding;
  } kinds[] = {{".lora_A.weight", true, false},
               {".lora_B.weight", false, false},
               {".lora_embedding_A", true, true},
               {".lora_embedding_B", false, true}};
  for (const auto& k : kinds)
    if (name.ends_with(k.suffix)) {
      const size_t start = std::string(kPrefix).size(), len = name.size() - std::string(k.suffix).size();
      if (len <= start) bad(where, "tensor '" + name + "' names no module");
      return {name.substr(start, len - start), k.is_a, k.embedding};
    }
  if (name.ends_with(".lora_B.bias"))
    bad(where, "tensor '" + name + "' is a LoRA bias (bias other than \"none\" is not supported)");
  if (name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos)
    bad(where, "tensor '" + name + "' has an adapter name inside it; PEFT saves factors as '.lora_A.weight'");
  bad(where, "tensor '" + name +
                 "' is not a LoRA factor (a full-rank module, as modules_to_save stores, is not "
                 "supported)");
}

// `target` is the config's target_modules regex, built once (empty when it gives a list)
bool covered_by_targets(const PeftLoraConfig& c, const std::regex* target, const std::string& module) {
  if (target) return std::regex_match(module, *target);
  if (c.target_modules.empty()) return true;  // null: PEFT chose them from the architecture
  for (const auto& t : c.target_modules)
    if (module == t || module.ends_with("." + t)) return true;
  return false;
}

}  // namespace

bool is_peft_lora_folder(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(fs::path(path) / kLoraConfigName, ec);
}

PeftLoraConfig parse_peft_lora_config(const std::string& text, const std::string& where) {
  StrictJson parsed = parse_json_strict(text, where, {.max_depth = 4, .max_array_len = 1u << 16});
  if (parsed.duplicate_key) bad(where, "key '" + *parsed.duplicate_key + "' appears twice");
  const nlohmann::json& j = parsed.value;
  if (!j.is_object()) throw Error(ErrorCode::HeaderNotObject, where, "the adapter config is not a JSON object");
  auto field = [&](const char* key) -> const nlohmann::json* {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  };
  auto flag = [&](const char* key) {
    const nlohmann::json* v = field(key);
    if (!v) return false;
    if (!v->is_boolean()) bad(where, std::string(key) + " must be true or false");
    return v->get<bool>();
  };
  PeftLoraConfig c;
  const nlohmann::json* type = field("peft_type");
  if (!type || !type->is_string()) bad(where, "peft_type is missing (a PEFT adapter config says \"LORA\")");
  if (type->get<std::string>() != "LORA")
    bad(where, "peft_type is \"" + type->get<std::string>() + "\"; only LoRA adapters are supported");
  const nlohmann::json* r = field("r");
  if (!r || !r->is_number_integer() || r->get<int64_t>() < 0) bad(where, "r must be a positive integer");
  if (r->get<int64_t>() == 0) bad(where, "r is 0: a LoRA of rank 0 changes nothing and PEFT refuses it");
  c.r = r->get<uint64_t>();
  c.lora_alpha = 8;  // PEFT's default
  if (const nlohmann::json* a = field("lora_alpha")) {
    if (!a->is_number() || !std::isfinite(a->get<double>())) bad(where, "lora_alpha must be a number");
    c.lora_alpha = a->get<double>();
  }
  c.use_rslora = flag("use_rslora");
  c.fan_in_fan_out = flag("fan_in_fan_out");
  if (flag("use_dora")) bad(where, "use_dora is true: DoRA adapters are not supported");
  if (const nlohmann::json* m = field("modules_to_save"); m && !is_null_or_empty(*m))
    bad(where,
        "modules_to_save is set: full-rank modules inside a LoRA are not supported (merge them into a "
        "checkpoint first)");
  if (const nlohmann::json* b = field("bias"); b && !(b->is_string() && b->get<std::string>() == "none"))
    bad(where, "bias must be \"none\": LoRA biases are not supported");
  if (const nlohmann::json* t = field("target_modules")) {
    if (t->is_string()) {
      c.target_regex = t->get<std::string>();
      check_pattern(c.target_regex, where, "target_modules");
      try {
        std::regex check(c.target_regex);
      } catch (const std::regex_error&) {
        bad(where, "target_modules \"" + c.target_regex + "\" is not a valid regular expression");
      }
    } else if (t->is_array()) {
      for (const auto& x : *t) {
        if (!x.is_string() || x.get<std::string>().empty()) bad(where, "target_modules must hold module names");
        c.target_modules.push_back(x.get<std::string>());
      }
    } else {
      bad(where, "target_modules must be a list of module names or a regular expression");
    }
  }
  if (const nlohmann::json* p = field("rank_pattern")) {
    if (!p->is_object()) bad(where, "rank_pattern must be an object of module patterns to ranks");
    for (const auto& [k, v] : p->items()) {
      check_pattern(k, where, "a rank_pattern key");
      if (!v.is_number_integer() || v.get<int64_t>() <= 0)
        bad(where, "rank_pattern['" + k + "'] must be a positive integer");
      c.rank_pattern[k] = v.get<uint64_t>();
    }
  }
  if (const nlohmann::json* p = field("alpha_pattern")) {
    if (!p->is_object()) bad(where, "alpha_pattern must be an object of module patterns to alphas");
    for (const auto& [k, v] : p->items()) {
      check_pattern(k, where, "an alpha_pattern key");
      if (!v.is_number() || !std::isfinite(v.get<double>())) bad(where, "alpha_pattern['" + k + "'] must be a number");
      c.alpha_pattern[k] = v.get<double>();
    }
  }
  if (const nlohmann::json* b = field("base_model_name_or_path"); b && b->is_string())
    c.base_model_name_or_path = b->get<std::string>();
  return c;
}

const std::string* match_lora_pattern(const std::vector<std::string>& keys, const std::string& module,
                                      const std::string& where) {
  for (const auto& k : keys) {
    try {
      if (std::regex_match(module, std::regex("(.*\\.)?(" + k + ")"))) return &k;
    } catch (const std::regex_error&) {
      bad(where, "pattern key '" + k + "' is not a valid regular expression");
    }
  }
  return nullptr;
}

std::vector<uint64_t> LoraModule::target_shape(bool fan_in_fan_out) const {
  const uint64_t in = a->shape[1], out = b->shape[0];
  if (embedding) return {in, out};  // A [r, vocab], B [dim, r]: δ = (B·A)ᵀ is [vocab, dim]
  return fan_in_fan_out ? std::vector<uint64_t>{in, out} : std::vector<uint64_t>{out, in};
}

PeftLora::PeftLora(const std::string& folder) : folder_(folder) {
  const std::string cfg_path = (fs::path(folder) / kLoraConfigName).string();
  config_ = parse_peft_lora_config(read_whole_file(cfg_path, "adapter config", 1 << 24), cfg_path);
  const std::string st_path = (fs::path(folder) / kLoraWeightsName).string();
  std::error_code ec;
  if (!fs::exists(st_path, ec)) {
    if (fs::exists(fs::path(folder) / "adapter_model.bin", ec))
      bad(folder, "holds adapter_model.bin (a pickle); only adapter_model.safetensors is read");
    bad(folder, std::string("has ") + kLoraConfigName + " but no " + kLoraWeightsName);
  }
  weights_ = std::make_unique<SafetensorsFile>(st_path);

  std::map<std::string, LoraModule> found;
  for (const auto& e : weights_->entries()) {
    const FactorName f = parse_factor_name(e.name, st_path);
    if (e.shape.size() != 2)
      bad(st_path, "tensor '" + e.name + "' has shape " + shape_string(e.shape) + "; a LoRA factor is a matrix");
    if (!dtype_is_float_decodable(e.dtype))
      bad(st_path, "tensor '" + e.name + "' has dtype " + std::string(dtype_name(e.dtype)) + "; factors are floats");
    LoraModule& m = found[f.module];
    if (!m.module.empty() && m.embedding != f.embedding)
      bad(st_path, "module '" + f.module + "' has both linear and embedding factors");
    m.module = f.module, m.embedding = f.embedding;
    (f.is_a ? m.a : m.b) = &e;
  }
  std::vector<std::string> rank_keys, alpha_keys;
  for (const auto& kv : config_.rank_pattern) rank_keys.push_back(kv.first);
  for (const auto& kv : config_.alpha_pattern) alpha_keys.push_back(kv.first);
  std::optional<std::regex> target;  // checked when the config was parsed
  if (!config_.target_regex.empty()) target.emplace(config_.target_regex);
  for (auto& [name, m] : found) {
    if (!m.a || !m.b)
      bad(st_path,
          "module '" + name + "' has " + (m.a ? "lora_A" : "lora_B") + " but no " + (m.a ? "lora_B" : "lora_A"));
    if (!covered_by_targets(config_, target ? &*target : nullptr, name))
      bad(cfg_path, "module '" + name + "' has factors in " + std::string(kLoraWeightsName) +
                        " but target_modules does not name it");
    m.r = config_.r, m.alpha = config_.lora_alpha;
    if (const std::string* k = match_lora_pattern(rank_keys, name, cfg_path)) m.r = config_.rank_pattern.at(*k);
    if (const std::string* k = match_lora_pattern(alpha_keys, name, cfg_path)) m.alpha = config_.alpha_pattern.at(*k);
    if (m.a->shape[0] != m.r || m.b->shape[1] != m.r)
      bad(st_path, "module '" + name + "': lora_A is " + shape_string(m.a->shape) + " and lora_B " +
                       shape_string(m.b->shape) + ", but the config gives it rank " + std::to_string(m.r));
    if (m.a->shape[1] == 0 || m.b->shape[0] == 0) bad(st_path, "module '" + name + "' has an empty factor");
    m.scale = m.alpha / (config_.use_rslora ? std::sqrt(static_cast<double>(m.r)) : static_cast<double>(m.r));
    by_tensor_[name + ".weight"] = modules_.size();
    modules_.push_back(m);
  }
  if (modules_.empty()) bad(st_path, "holds no LoRA factors");
}

const LoraModule* PeftLora::module_for(const std::string& tensor_name) const {
  auto it = by_tensor_.find(tensor_name);
  return it == by_tensor_.end() ? nullptr : &modules_[it->second];
}

std::vector<float> PeftLora::factor(const SafetensorsEntry& e) const {
  const TensorView v = weights_->view(e);
  std::vector<float> out(v.numel());
  decode_to_f32(v.dtype, v.bytes, 0, out);
  for (float x : out)
    if (!std::isfinite(x)) bad(weights_->path(), "tensor '" + e.name + "' holds a non-finite value");
  return out;
}

void PeftLora::check_against_base(const Checkpoint& base) const {
  for (const auto& m : modules_) {
    const std::string tensor = m.module + ".weight";
    const auto* got = base.find(tensor);
    if (!got)
      throw Error(ErrorCode::TensorSetMismatch, folder_,
                  "targets module '" + m.module + "' but " + base.path() + " has no tensor '" + tensor + "'");
    const auto want = m.target_shape(config_.fan_in_fan_out);
    if (got->entry->shape != want)
      throw Error(ErrorCode::ShapeMismatch, folder_,
                  "module '" + m.module + "' makes a " + shape_string(want) + " delta but '" + tensor + "' is " +
                      shape_string(got->entry->shape) + " in " + base.path() +
                      (m.embedding || config_.fan_in_fan_out ? "" : " (fan_in_fan_out?)"));
    if (!dtype_is_float_decodable(got->entry->dtype))
      throw Error(ErrorCode::DtypeMismatch, folder_, "targets '" + tensor + "', which is not a float tensor");
  }
}

void write_peft_lora(const std::string& out, const nlohmann::json& config, const std::vector<LoraTensor>& tensors,
                     const std::string& card) {
  AtomicDirectory dir(out);
  {
    AtomicFile f((fs::path(dir.temp_dir()) / kLoraConfigName).string());
    const std::string text = config.dump(2) + "\n";
    f.write(text.data(), text.size());
    f.commit();
  }
  {
    std::vector<TensorSpec> specs;
    for (const auto& t : tensors) specs.push_back(t.spec);
    SafetensorsWriter w((fs::path(dir.temp_dir()) / kLoraWeightsName).string(), specs, {{"format", "pt"}});
    for (const auto& t : tensors) w.write(t.bytes.data(), t.bytes.size());
    w.commit();
  }
  {
    AtomicFile f((fs::path(dir.temp_dir()) / "README.md").string());
    f.write(card.data(), card.size());
    f.commit();
  }
  dir.commit();
}

}  // namespace deltakit
