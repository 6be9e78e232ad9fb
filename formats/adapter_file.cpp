#include "formats/adapter_file.h"

#include <filesystem>
#include <utility>

#include "formats/json_strict.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
using Json = nlohmann::ordered_json;
std::string part_key(const std::string& name, const std::string& part) { return name + "::" + part; }
}  // namespace

AdapterWriter::AdapterWriter(const std::string& path, uint64_t header_reserve)
    : writer_(path, header_reserve) {}

void AdapterWriter::begin_part(const std::string& tensor, const std::string& part, DType dtype,
                               const std::vector<uint64_t>& shape) {
  TensorSpec spec{part_key(tensor, part), dtype, shape};
  writer_.begin_tensor(spec);
  pending_parts_.push_back(part);
  pending_bytes_ += spec.nbytes();
}

void AdapterWriter::write_part(const void* data, size_t n) { writer_.write(data, n); }

void AdapterWriter::add_part(const std::string& tensor, const AdapterPart& p) {
  begin_part(tensor, p.part, p.dtype, p.shape);
  write_part(p.bytes.data(), p.bytes.size());
}

uint64_t AdapterWriter::end_tensor(const std::string& name, Json record) {
  Json full = Json::object();
  full["name"] = name;
  for (auto& [k, v] : record.items()) full[k] = v;
  full["parts"] = std::move(pending_parts_);
  pending_parts_ = Json::array();
  records_.push_back(std::move(full));
  return std::exchange(pending_bytes_, 0);
}

void AdapterWriter::commit(const std::map<std::string, std::string>& root,
                           const std::map<std::string, std::string>& side_files) {
  std::map<std::string, std::string> meta = root;
  meta["format"] = kAdapterFormat;
  meta["format_version"] = kAdapterVersion;
  meta["deltakit_version"] = DELTAKIT_VERSION;
  meta["tensors"] = records_.dump();
  Json sf = Json::object();
  for (const auto& [k, v] : side_files) sf[k] = v;
  meta["side_files"] = sf.dump();
  writer_.set_metadata(std::move(meta));
  writer_.commit();
}

bool is_adapter_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  try {
    SafetensorsFile f(path);
    auto it = f.metadata().find("format");
    return it != f.metadata().end() && it->second == kAdapterFormat;
  } catch (const Error&) {
    return false;
  }
}

AdapterReader::AdapterReader(const std::string& path) : file_(path) {
  const auto& meta = file_.metadata();
  auto get = [&](const char* key) -> const std::string& {
    auto it = meta.find(key);
    if (it == meta.end())
      throw Error(ErrorCode::AdapterInvalid, path, std::string("not a deltakit adapter (no \"") + key + "\" in __metadata__)");
    return it->second;
  };
  if (get("format") != kAdapterFormat)
    throw Error(ErrorCode::AdapterInvalid, path, "not a deltakit adapter (format is \"" + get("format") + "\")");
  if (get("format_version") != kAdapterVersion)
    throw Error(ErrorCode::AdapterInvalid, path,
                "adapter format_version " + get("format_version") + " is not supported (expected " + kAdapterVersion + ")");
  auto recs = parse_json_strict(get("tensors"), path + " (tensors record)");
  if (!recs.value.is_array() || recs.duplicate_key)
    throw Error(ErrorCode::AdapterInvalid, path, "tensors record is not an array of objects");
  records_ = std::move(recs.value);
  size_t parts_total = 0;
  for (size_t i = 0; i < records_.size(); ++i) {
    const Json& r = records_[i];
    if (!r.is_object() || !r.contains("name") || !r["name"].is_string() || !r.contains("parts") ||
        !r["parts"].is_array() || !r.contains("dtype") || !r["dtype"].is_string() ||
        !r.contains("shape") || !r["shape"].is_array() || !r.contains("codec") || !r["codec"].is_string())
      throw Error(ErrorCode::AdapterInvalid, path, "tensor record " + std::to_string(i) + " lacks name/codec/dtype/shape/parts");
    std::string name = r["name"].get<std::string>();
    if (!by_name_.emplace(name, i).second)
      throw Error(ErrorCode::AdapterInvalid, path, "tensor '" + name + "' recorded twice");
    if (!dtype_from_name(r["dtype"].get<std::string>()))
      throw Error(ErrorCode::AdapterInvalid, path, "tensor '" + name + "' has unknown dtype");
    for (const auto& d : r["shape"])
      if (!d.is_number_unsigned()) throw Error(ErrorCode::AdapterInvalid, path, "tensor '" + name + "' has a bad shape");
    for (const auto& p : r["parts"]) {
      if (!p.is_string() || !file_.find(part_key(name, p.get<std::string>())))
        throw Error(ErrorCode::AdapterInvalid, path, "tensor '" + name + "' names a payload that is missing");
      ++parts_total;
    }
  }
  if (parts_total != file_.entries().size())
    throw Error(ErrorCode::AdapterInvalid, path, "the file holds payload arrays that no record names");
  auto sf = parse_json_strict(get("side_files"), path + " (side_files record)");
  if (!sf.value.is_object()) throw Error(ErrorCode::AdapterInvalid, path, "side_files record is not an object");
  for (const auto& [k, v] : sf.value.items()) {
    std::filesystem::path leaf(k);
    if (!v.is_string() || k.empty() || leaf.has_parent_path() || k == "." || k == "..")
      throw Error(ErrorCode::AdapterInvalid, path, "side file entry \"" + k + "\" is not a plain file name with text");
    side_files_[k] = v.get<std::string>();
  }
}

const Json* AdapterReader::record(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &records_[it->second];
}

TensorView AdapterReader::part(const std::string& name, const std::string& part, DType dtype) const {
  const SafetensorsEntry* e = file_.find(part_key(name, part));
  if (!e) throw Error(ErrorCode::AdapterInvalid, path(), "tensor '" + name + "' has no payload \"" + part + "\"");
  if (e->dtype != dtype)
    throw Error(ErrorCode::AdapterInvalid, path(),
                "payload " + e->name + " is " + std::string(dtype_name(e->dtype)) + ", expected " + std::string(dtype_name(dtype)));
  return file_.view(*e);
}

void AdapterReader::release(const std::string& name) const {
  const Json* r = record(name);
  if (!r) return;
  for (const auto& p : (*r)["parts"]) file_.release(*file_.find(part_key(name, p.get<std::string>())));
}

uint64_t AdapterReader::stored_bytes(const std::string& name) const {
  const Json* r = record(name);
  uint64_t total = 0;
  if (!r) return 0;
  for (const auto& p : (*r)["parts"]) total += file_.find(part_key(name, p.get<std::string>()))->nbytes();
  return total;
}

}  // namespace deltakit
