#include "formats/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "formats/json_strict.h"
#include "src/core/checked.h"
#include "src/core/eintr.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
using Json = nlohmann::ordered_json;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& info, const std::string& where) {
  const std::string what = "tensor '" + name + "'";
  if (!info.is_object()) throw Error(ErrorCode::HeaderNotObject, where, what + " is not a JSON object");
  auto dt = info.find("dtype");
  auto sh = info.find("shape");
  auto off = info.find("data_offsets");
  if (dt == info.end() || sh == info.end() || off == info.end())
    throw Error(ErrorCode::HeaderNotObject, where, what + " lacks one of \"dtype\", \"shape\", \"data_offsets\"");
  if (!dt->is_string()) throw Error(ErrorCode::UnknownDtype, where, what + ": dtype is not a string");
  auto dtype = dtype_from_name(dt->get<std::string>());
  if (!dtype) throw Error(ErrorCode::UnknownDtype, where, what + ": unknown dtype \"" + dt->get<std::string>() + "\"");
  SafetensorsEntry e;
  e.name = name;
  e.dtype = *dtype;
  if (!sh->is_array()) throw Error(ErrorCode::InvalidShape, where, what + ": shape is not an array");
  uint64_t numel = 1;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned())
      throw Error(ErrorCode::InvalidShape, where,
                  what + ": shape entry " + d.dump() + " is not a non-negative integer");
    uint64_t v = d.get<uint64_t>();
    e.shape.push_back(v);
    auto n = checked_mul(numel, v);
    if (!n) throw Error(ErrorCode::Overflow, where, what + ": element count overflows 64 bits");
    numel = *n;
  }
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
    throw Error(ErrorCode::InvalidOffsets, where, what + ": data_offsets must be two non-negative integers");
  e.begin = (*off)[0].get<uint64_t>();
  e.end = (*off)[1].get<uint64_t>();
  if (e.end < e.begin)
    throw Error(ErrorCode::InvalidOffsets, where,
                what + ": data_offsets end " + std::to_string(e.end) + " < begin " + std::to_string(e.begin));
  auto nbytes = checked_mul(numel, dtype_size(e.dtype));
  if (!nbytes) throw Error(ErrorCode::Overflow, where, what + ": byte size overflows 64 bits");
  if (*nbytes != e.end - e.begin)
    throw Error(ErrorCode::SizeMismatch, where,
                what + ": shape " + shape_string(e.shape) + " of " + std::string(dtype_name(e.dtype)) + " needs " +
                    std::to_string(*nbytes) + " bytes but data_offsets span " + std::to_string(e.end - e.begin));
  return e;
}
}  // namespace

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file, const std::string& where) {
  return parse_safetensors_header(file, file.size(), where);
}

SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file, uint64_t file_size,
                                           const std::string& where) {
  if (file_size < 8 || file.size() < 8)
    throw Error(ErrorCode::FileTooSmall, where,
                "file is " + std::to_string(file_size) + " bytes, shorter than the 8-byte header length");
  const uint64_t n = read_u64_le(file.data());
  if (n > kSafetensorsMaxHeader)
    throw Error(ErrorCode::HeaderTooLarge, where, "header length " + std::to_string(n) + " exceeds the 100 MB cap");
  auto data_offset = checked_add(8, n);
  if (!data_offset || *data_offset > file_size || *data_offset > file.size())
    throw Error(ErrorCode::HeaderTooLarge, where,
                "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(file_size) +
                    " bytes)");
  std::string_view text(reinterpret_cast<const char*>(file.data() + 8), n);
  if (text.empty() || text.front() != '{')
    throw Error(ErrorCode::HeaderNotJson, where, "header does not start with '{'");
  // a header is an object of objects holding short arrays (shape, data_offsets)
  StrictJson parsed = parse_json_strict(text, where, {.max_depth = 3, .max_array_len = 64});
  if (!parsed.value.is_object()) throw Error(ErrorCode::HeaderNotObject, where, "header is not a JSON object");
  if (parsed.duplicate_key)
    throw Error(ErrorCode::DuplicateName, where, "header names \"" + *parsed.duplicate_key + "\" more than once");

  SafetensorsHeader h;
  h.data_offset = *data_offset;
  for (const auto& [key, value] : parsed.value.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) throw Error(ErrorCode::InvalidMetadata, where, "__metadata__ is not an object");
      for (const auto& [mk, mv] : value.items()) {
        if (!mv.is_string())
          throw Error(ErrorCode::InvalidMetadata, where, "__metadata__ value of \"" + mk + "\" is not a string");
        h.metadata[mk] = mv.get<std::string>();
      }
      continue;
    }
    h.entries.push_back(parse_entry(key, value, where));
  }
  std::sort(h.entries.begin(), h.entries.end(),
            [](const auto& a, const auto& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expected = 0;
  for (const auto& e : h.entries) {
    if (e.begin != expected)
      throw Error(ErrorCode::OffsetsNotContiguous, where,
                  "tensor '" + e.name + "' starts at " + std::to_string(e.begin) + " but the " +
                      (e.begin > expected ? "previous data ends at " : "previous tensor overlaps it, ending at ") +
                      std::to_string(expected));
    expected = e.end;
  }
  const uint64_t data_len = file_size - h.data_offset;
  if (expected != data_len) {
    if (expected > data_len)
      throw Error(ErrorCode::DataLengthMismatch, where,
                  "file truncated: tensors need " + std::to_string(expected) + " data bytes but only " +
                      std::to_string(data_len) + " are present");
    throw Error(ErrorCode::DataLengthMismatch, where,
                std::to_string(data_len - expected) + " unexpected bytes after the last tensor");
  }
  return h;
}

// --- reader ----------------------------------------------------------------------------------
SafetensorsFile::SafetensorsFile(const std::string& path) : map_(path) {
  // the header by pread: the file is mapped only when one of its tensors is read
  const uint64_t size = map_.size();
  std::vector<uint8_t> head = map_.read(0, std::min<uint64_t>(size, 8));
  if (head.size() == 8) {
    const uint64_t n = read_u64_le(head.data());
    if (n <= kSafetensorsMaxHeader && 8 + n <= size) head = map_.read(0, 8 + n);
  }
  header_ = parse_safetensors_header(head, size, path);
  for (size_t i = 0; i < header_.entries.size(); ++i) by_name_[header_.entries[i].name] = i;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &header_.entries[it->second];
}

TensorView SafetensorsFile::view(const SafetensorsEntry& e) const {
  TensorView v;
  v.name = e.name;
  v.dtype = e.dtype;
  v.shape = e.shape;
  v.bytes = map_.bytes().subspan(header_.data_offset + e.begin, e.nbytes());
  v.file = &map_, v.file_offset = header_.data_offset + e.begin;
  return v;
}

void SafetensorsFile::populate(const SafetensorsEntry& e) const {
  map_.populate(header_.data_offset + e.begin, e.nbytes());
}

void SafetensorsFile::release(const SafetensorsEntry& e) const {
  map_.release(header_.data_offset + e.begin, e.nbytes());
}

// --- writer ----------------------------------------------------------------------------------
uint64_t TensorSpec::nbytes() const {
  uint64_t n = dtype_size(dtype);
  for (uint64_t d : shape) n *= d;
  return n;
}

std::string safetensors_header_bytes(const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata, uint64_t min_total) {
  Json j = Json::object();
  if (!metadata.empty()) {
    Json m = Json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    j["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (const auto& s : specs) {
    Json t = Json::object();
    t["dtype"] = std::string(dtype_name(s.dtype));
    t["shape"] = s.shape;
    t["data_offsets"] = {offset, offset + s.nbytes()};
    offset += s.nbytes();
    j[s.name] = t;
  }
  std::string text = j.dump();
  // pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does
  uint64_t total = 8 + text.size();
  uint64_t padded = (total + 7) / 8 * 8;
  if (padded < min_total) padded = min_total;
  text.append(padded - total, ' ');
  uint64_t n = text.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, std::vector<TensorSpec> specs,
                                     std::map<std::string, std::string> metadata)
    : file_(std::make_unique<AtomicFile>(path, FileIo::Direct)),
      specs_(std::move(specs)),
      metadata_(std::move(metadata)) {
  std::string header = safetensors_header_bytes(specs_, metadata_);
  file_->write(header.data(), header.size());
  advance_past_complete_tensors();
}

SafetensorsWriter::SafetensorsWriter(const std::string& path, uint64_t header_reserve)
    : file_(std::make_unique<AtomicFile>(path)),
      deferred_(true),
      reserve_((std::max<uint64_t>(header_reserve, 16) + 7) / 8 * 8) {
  file_->write_zeros(reserve_);
}

void SafetensorsWriter::begin_tensor(const TensorSpec& spec) {
  if (!deferred_) throw std::logic_error("begin_tensor in up-front mode");
  if (current_ != specs_.size()) throw std::logic_error("begin_tensor before the last one ended");
  specs_.push_back(spec);
  current_done_ = 0;
  advance_past_complete_tensors();
}

void SafetensorsWriter::advance_past_complete_tensors() {
  while (current_ < specs_.size() && current_done_ == specs_[current_].nbytes()) {
    ++current_;
    current_done_ = 0;
  }
}

void SafetensorsWriter::write(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n) {
    if (current_ >= specs_.size()) throw std::logic_error("write past the declared tensors");
    uint64_t room = specs_[current_].nbytes() - current_done_;
    uint64_t k = std::min<uint64_t>(room, n);
    file_->write(p, k);
    p += k;
    n -= k;
    current_done_ += k;
    advance_past_complete_tensors();
  }
}

void SafetensorsWriter::set_metadata(std::map<std::string, std::string> metadata) {
  if (!deferred_) throw std::logic_error("set_metadata in up-front mode");
  metadata_ = std::move(metadata);
}

void SafetensorsWriter::commit() {
  if (current_ != specs_.size())
    throw std::logic_error("commit before every tensor was written: " + specs_[current_].name);
  if (deferred_) {
    std::string header = safetensors_header_bytes(specs_, metadata_, reserve_);
    if (header.size() == reserve_) {
      file_->write_at(0, header.data(), header.size());
    } else {  // outgrew the reservation: copy the data behind a header of the right size
      file_->flush();
      auto fresh = std::make_unique<AtomicFile>(file_->final_path());
      fresh->write(header.data(), header.size());
      int fd = retry_eintr([&] { return ::open(file_->temp_path().c_str(), O_RDONLY | O_CLOEXEC); });
      if (fd < 0) throw_errno(file_->temp_path(), "cannot reopen");
      std::vector<char> buf(1 << 20);
      off_t off = static_cast<off_t>(reserve_);
      for (;;) {
        ssize_t k = ::pread(fd, buf.data(), buf.size(), off);
        if (k < 0) {
          ::close(fd);
          throw_errno(file_->temp_path(), "read back failed");
        }
        if (k == 0) break;
        fresh->write(buf.data(), static_cast<size_t>(k));
        off += k;
      }
      ::close(fd);
      file_ = std::move(fresh);  // the old temporary is unlinked by its destructor
    }
  }
  file_->commit();
}

}  // namespace deltakit
