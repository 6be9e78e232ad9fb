// The adapter container (provisional, format_version 0): one safetensors file. Each tensor of the
// model has a record (its codec's attributes, shape, dtype, the base tensor's fingerprint) and
// zero or more payload arrays stored as safetensors tensors named "<tensor>::<part>". Records and
// root attributes live in __metadata__:
//   "format": "deltakit-adapter", "format_version": "0", "recipe", "base", "finetuned",
//   "deltakit_version", "tensors": JSON array of records in storage order
//   [{"name", "codec", "dtype", "shape", "base_fingerprint" (16 hex), "parts": [part names],
//     ...codec attributes}], "side_files": JSON object {file name: text} (the fine-tune's
//   config.json, tokenizer files, ... — text files up to 16 MB).
// The codecs issue replaces this container with HDF5; the reader checks the version.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace deltakit {

constexpr const char* kAdapterFormat = "deltakit-adapter";
constexpr const char* kAdapterVersion = "0";

struct AdapterPart {
  std::string part;
  DType dtype;
  std::vector<uint64_t> shape;
  std::span<const uint8_t> bytes;
};

class AdapterWriter {
 public:
  // reserve: a guess of the header size (records + side files); any guess is correct, a good one
  // avoids rewriting the file once at commit.
  AdapterWriter(const std::string& path, uint64_t header_reserve);
  // A tensor is its payload parts, then its record. A part is written whole (add_part) or
  // streamed (begin_part, then write_part in any chunking until shape × dtype bytes arrived).
  void add_part(const std::string& tensor, const AdapterPart& part);
  void begin_part(const std::string& tensor, const std::string& part, DType dtype,
                  const std::vector<uint64_t>& shape);
  void write_part(const void* data, size_t n);
  // record: the codec's attributes; "name" and "parts" (those added since the last record) are
  // filled in here. Returns the payload bytes stored for this tensor.
  uint64_t end_tensor(const std::string& name, nlohmann::ordered_json record);
  // root: recipe, base, finetuned, ...; side_files: file name -> contents.
  void commit(const std::map<std::string, std::string>& root,
              const std::map<std::string, std::string>& side_files);

 private:
  SafetensorsWriter writer_;
  nlohmann::ordered_json records_ = nlohmann::ordered_json::array();
  nlohmann::ordered_json pending_parts_ = nlohmann::ordered_json::array();
  uint64_t pending_bytes_ = 0;
};

class AdapterReader {
 public:
  explicit AdapterReader(const std::string& path);  // validates container and records
  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.file_size(); }
  const std::map<std::string, std::string>& root() const { return file_.metadata(); }
  const std::map<std::string, std::string>& side_files() const { return side_files_; }
  const nlohmann::ordered_json& records() const { return records_; }  // array, storage order
  const nlohmann::ordered_json* record(const std::string& name) const;
  // A payload array of a tensor; Error(AdapterInvalid) if absent or of another dtype.
  TensorView part(const std::string& name, const std::string& part, DType dtype) const;
  uint64_t stored_bytes(const std::string& name) const;  // payload bytes of one tensor
  // Unmap the pages of a tensor's payloads once it has been applied (memory stays ~one tensor).
  void release(const std::string& name) const;
  void check_intact() const { file_.mapped().check_intact(); }

 private:
  SafetensorsFile file_;
  nlohmann::ordered_json records_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> side_files_;
};

// True if the file at `path` looks like an adapter (a safetensors file with our format tag).
bool is_adapter_file(const std::string& path);

}  // namespace deltakit
