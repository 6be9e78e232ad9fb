#include "src/eval/train_config.h"

#include <yaml-cpp/yaml.h>

#include "src/core/error.h"
#include "src/core/whole_file.h"

namespace deltakit {

EmbeddedPreset read_train_config(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::Load(read_whole_file(path, "training config", uint64_t{1} << 20));
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::Usage, path, std::string("not a readable YAML file: ") + e.what());
  }
  if (!root.IsMap()) throw Error(ErrorCode::Usage, path, "the training config must be a YAML mapping");
  EmbeddedPreset p = embedded_preset(root["size"] ? root["size"].as<std::string>() : "small");
  auto read = [&](const YAML::Node& map, const std::string& section, const std::string& key, auto& target) {
    if (!map[key]) return;
    try {
      target = map[key].as<std::remove_reference_t<decltype(target)>>();
    } catch (const std::exception&) {
      throw Error(ErrorCode::Usage, path, section + key + " has the wrong type");
    }
  };
  auto only = [&](const YAML::Node& map, const std::string& section, std::initializer_list<const char*> keys) {
    if (!map) return;
    if (!map.IsMap()) throw Error(ErrorCode::Usage, path, section + " must be a mapping");
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string k = it->first.as<std::string>();
      bool ok = false;
      for (const char* allowed : keys) ok |= k == allowed;
      if (!ok) throw Error(ErrorCode::Usage, path, "unknown key \"" + section + k + "\"");
    }
  };
  only(root, "", {"size", "model", "train", "skill_share"});
  const YAML::Node m = root["model"], t = root["train"];
  only(m, "model.",
       {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "head_dim", "max_position_embeddings", "rope_theta", "tie_word_embeddings"});
  only(t, "train.", {"steps", "batch", "seq", "lr", "warmup", "weight_decay", "min_lr_ratio", "clip", "seed"});
  if (m) {
    read(m, "model.", "hidden_size", p.model.dim);
    read(m, "model.", "intermediate_size", p.model.hidden);
    read(m, "model.", "num_hidden_layers", p.model.layers);
    read(m, "model.", "num_attention_heads", p.model.heads);
    read(m, "model.", "num_key_value_heads", p.model.kv_heads);
    if (!m["head_dim"]) p.model.head_dim = p.model.heads ? p.model.dim / p.model.heads : 0;
    read(m, "model.", "head_dim", p.model.head_dim);
    read(m, "model.", "max_position_embeddings", p.model.max_seq);
    read(m, "model.", "rope_theta", p.model.rope_theta);
    read(m, "model.", "tie_word_embeddings", p.model.tie_embeddings);
  }
  if (t) {
    read(t, "train.", "steps", p.base.steps);
    read(t, "train.", "batch", p.base.batch);
    read(t, "train.", "seq", p.base.seq);
    read(t, "train.", "lr", p.base.lr);
    read(t, "train.", "warmup", p.base.warmup);
    read(t, "train.", "weight_decay", p.base.weight_decay);
    read(t, "train.", "min_lr_ratio", p.base.min_lr_ratio);
    read(t, "train.", "clip", p.base.clip);
    read(t, "train.", "seed", p.base.seed);
  }
  read(root, "", "skill_share", p.skill_share);
  p.model.validate(path);
  if (p.base.seq > static_cast<int64_t>(p.model.max_seq))
    throw Error(ErrorCode::Usage, path, "train.seq exceeds max_position_embeddings");
  return p;
}

}  // namespace deltakit
