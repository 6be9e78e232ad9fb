#include "formats/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "formats/json_strict.h"
#include "src/core/error.h"
#include "src/core/whole_file.h"

namespace fs = std::filesystem;

namespace deltakit {

namespace {}  // namespace

Checkpoint::Checkpoint(const std::string& path) : path_(path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    folder_ = path;
    fs::path index = fs::path(path) / kIndexFileName;
    fs::path single = fs::path(path) / kSingleFileName;
    if (fs::exists(index, ec)) {
      open_index(index.string());
    } else if (fs::exists(single, ec)) {
      add_shard(single.string());
    } else {
      throw Error(ErrorCode::MissingShard, path,
                  std::string("no ") + kSingleFileName + " or " + kIndexFileName + " in this folder");
    }
  } else if (fs::is_regular_file(path, ec)) {
    folder_ = fs::path(path).parent_path().string();
    add_shard(path);
  } else {
    throw Error(ErrorCode::Io, path, "no such checkpoint folder or file");
  }
}

void Checkpoint::add_shard(const std::string& file_path) {
  shards_.push_back(std::make_unique<SafetensorsFile>(file_path));
  const SafetensorsFile* f = shards_.back().get();
  for (const auto& e : f->entries()) {
    if (by_name_.count(e.name))
      throw Error(ErrorCode::DuplicateName, file_path,
                  "tensor '" + e.name + "' also appears in " + by_name_[e.name].file->path());
    by_name_[e.name] = {f, &e};
    names_.push_back(e.name);
  }
}

void Checkpoint::open_index(const std::string& index_path) {
  sharded_ = true;
  StrictJson parsed = parse_json_strict(read_whole_file(index_path, "checkpoint index", kSafetensorsMaxHeader),
                                        index_path, {.max_depth = 4, .max_array_len = 4096});
  if (parsed.duplicate_key)
    throw Error(ErrorCode::DuplicateName, index_path, "index names \"" + *parsed.duplicate_key + "\" more than once");
  const auto& j = parsed.value;
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(ErrorCode::IndexInvalid, index_path, "no \"weight_map\" object");

  // shards in name order (model-00001-of-00003, ...); each path checked before it is opened
  std::set<std::string> shard_names;
  std::map<std::string, std::string> listed;  // tensor -> shard
  const fs::path folder_real = fs::canonical(folder_);
  for (const auto& [tensor, shard_json] : j["weight_map"].items()) {
    if (!shard_json.is_string())
      throw Error(ErrorCode::IndexInvalid, index_path, "weight_map[\"" + tensor + "\"] is not a string");
    std::string shard = shard_json.get<std::string>();
    listed[tensor] = shard;
    if (shard_names.count(shard)) continue;
    fs::path rel(shard);
    if (shard.empty() || rel.is_absolute())
      throw Error(ErrorCode::PathEscapes, index_path, "shard path \"" + shard + "\" is not relative");
    for (const auto& part : rel)
      if (part == "..")
        throw Error(ErrorCode::PathEscapes, index_path, "shard path \"" + shard + "\" leaves the checkpoint folder");
    fs::path full = fs::path(folder_) / rel;
    std::error_code ec;
    if (!fs::exists(full, ec))
      throw Error(ErrorCode::MissingShard, index_path, "shard \"" + shard + "\" does not exist");
    fs::path real = fs::canonical(full, ec);
    auto mis = std::mismatch(folder_real.begin(), folder_real.end(), real.begin(), real.end());
    if (ec || mis.first != folder_real.end())
      throw Error(ErrorCode::PathEscapes, index_path,
                  "shard \"" + shard + "\" resolves outside the checkpoint folder (" + real.string() + ")");
    shard_names.insert(shard);
  }
  for (const auto& shard : shard_names) add_shard((fs::path(folder_) / shard).string());

  // every tensor exactly once, where the index says
  for (const auto& [tensor, shard] : listed) {
    auto it = by_name_.find(tensor);
    if (it == by_name_.end())
      throw Error(ErrorCode::IndexInvalid, index_path,
                  "tensor '" + tensor + "' is listed in shard \"" + shard + "\" but absent from it");
    if (fs::path(it->second.file->path()) != fs::path(folder_) / shard)
      throw Error(ErrorCode::IndexInvalid, index_path,
                  "tensor '" + tensor + "' is listed in \"" + shard + "\" but stored in " + it->second.file->path());
  }
  for (const auto& name : names_)
    if (!listed.count(name))
      throw Error(ErrorCode::IndexInvalid, index_path,
                  "tensor '" + name + "' is in " + by_name_[name].file->path() + " but not in the index");
}

const Checkpoint::Located* Checkpoint::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &it->second;
}

const Checkpoint::Located& Checkpoint::at(const std::string& name) const {
  const Located* l = find(name);
  if (!l) throw std::logic_error("Checkpoint::at: no tensor " + name);
  return *l;
}

TensorView Checkpoint::view(const std::string& name) const {
  const Located& l = at(name);
  return l.file->view(*l.entry);
}

TensorView Checkpoint::acquire(const std::string& name, bool populate) const {
  const Located& l = at(name);
  if (populate) l.file->populate(*l.entry);
  return l.file->view(*l.entry);
}

void Checkpoint::release(const std::string& name) const {
  const Located& l = at(name);
  l.file->release(*l.entry);
}

void Checkpoint::check_intact() const {
  for (const auto& shard : shards_) shard->mapped().check_intact();
}

std::string Checkpoint::shard_of(const std::string& name) const {
  return fs::path(at(name).file->path()).filename().string();
}

uint64_t Checkpoint::total_tensor_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, l] : by_name_) total += l.entry->nbytes();
  return total;
}

std::vector<std::string> checkpoint_side_files(const std::string& folder) {
  std::vector<std::string> out;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) return out;
  for (const auto& de : fs::directory_iterator(folder)) {
    std::string leaf = de.path().filename().string();
    if (!de.is_regular_file() || leaf.empty() || leaf[0] == '.') continue;
    if (leaf.ends_with(".safetensors") || leaf == kIndexFileName) continue;
    out.push_back(leaf);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// --- writer ----------------------------------------------------------------------------------
ShardPlan plan_shards(std::vector<TensorSpec> specs, uint64_t max_shard_bytes) {
  ShardPlan plan;
  for (auto& s : specs) {
    if (plan.shards.empty() || (plan.bytes.back() > 0 && plan.bytes.back() + s.nbytes() > max_shard_bytes)) {
      plan.shards.emplace_back();
      plan.bytes.push_back(0);
    }
    plan.bytes.back() += s.nbytes();
    plan.shards.back().push_back(std::move(s));
  }
  if (plan.shards.empty()) {
    plan.shards.emplace_back();
    plan.bytes.push_back(0);
  }
  return plan;
}

std::string ShardPlan::name(size_t i) const {
  if (shards.size() == 1) return kSingleFileName;
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
  return buf;
}

void write_shard_index(const std::string& folder, const ShardPlan& plan) {
  if (plan.shards.size() == 1) return;
  nlohmann::ordered_json index;
  uint64_t total = 0;
  for (uint64_t b : plan.bytes) total += b;
  index["metadata"] = {{"total_size", total}};
  nlohmann::ordered_json map = nlohmann::ordered_json::object();
  for (size_t i = 0; i < plan.shards.size(); ++i)
    for (const auto& s : plan.shards[i]) map[s.name] = plan.name(i);
  index["weight_map"] = map;
  std::string text = index.dump(2) + "\n";
  write_file_atomically((fs::path(folder) / kIndexFileName).string(), text);
}

CheckpointWriter::CheckpointWriter(std::string folder, std::vector<TensorSpec> specs, uint64_t max_shard_bytes,
                                   std::map<std::string, std::string> metadata)
    : folder_(std::move(folder)),
      metadata_(std::move(metadata)),
      plan_(plan_shards(std::move(specs), max_shard_bytes)) {
  open_next_shard();
}

void CheckpointWriter::open_next_shard() {
  writer_ = std::make_unique<SafetensorsWriter>((fs::path(folder_) / plan_.name(shard_)).string(), plan_.shards[shard_],
                                                metadata_);
  shard_done_ = 0;
}

void CheckpointWriter::write(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n) {
    if (shard_done_ == plan_.bytes[shard_]) {
      writer_->commit();
      ++shard_;
      if (shard_ >= plan_.shards.size()) throw std::logic_error("CheckpointWriter: write past the end");
      open_next_shard();
      continue;
    }
    uint64_t k = std::min<uint64_t>(n, plan_.bytes[shard_] - shard_done_);
    writer_->write(p, k);
    p += k;
    n -= k;
    shard_done_ += k;
  }
}

void CheckpointWriter::commit() {
  while (shard_ + 1 < plan_.shards.size() || shard_done_ != plan_.bytes[shard_]) {
    if (shard_done_ != plan_.bytes[shard_]) throw std::logic_error("CheckpointWriter: commit before all bytes");
    writer_->commit();
    ++shard_;
    open_next_shard();
  }
  writer_->commit();
  write_shard_index(folder_, plan_);
}

uint64_t parse_byte_size(const std::string& text) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    throw Error(ErrorCode::Usage, "", "cannot parse size \"" + text + "\" (e.g. 5GB, 500MB, 1048576)");
  }
  std::string unit = text.substr(pos);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::map<std::string, double> units = {{"", 1},         {"B", 1},           {"KB", 1e3},
                                                      {"MB", 1e6},     {"GB", 1e9},        {"TB", 1e12},
                                                      {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}};
  auto it = units.find(unit);
  if (it == units.end() || !(value > 0))
    throw Error(ErrorCode::Usage, "", "cannot parse size \"" + text + "\" (e.g. 5GB, 500MB, 1048576)");
  const double bytes = value * it->second;
  if (!(bytes >= 1) || !(bytes < 0x1p63))  // also NaN and inf: a cast would be undefined
    throw Error(ErrorCode::Usage, "", "size \"" + text + "\" is outside 1 byte .. 8 EB");
  return static_cast<uint64_t>(bytes);
}

}  // namespace deltakit
