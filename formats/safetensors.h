// safetensors files: the byte layout, a validating reader over mmap, and a streaming writer.
//
//   [0, 8)            N: header length, uint64 little-endian (we cap it at 100 MB)
//   [8, 8 + N)        UTF-8 JSON object (padded with spaces so the data starts 8-aligned):
//                     {"__metadata__": {str: str, ...},            (optional)
//                      "<tensor>": {"dtype": "BF16", "shape": [r, c], "data_offsets": [b, e]}}
//   [8 + N, end)      the data buffer; tensor bytes are [8 + N + b, 8 + N + e), row-major, LE
//
// A header is accepted only if (the reference implementation's rules, all overflow-checked):
// the length fits the file and the cap; the JSON is an object with no duplicate key; every
// dtype is known; shapes are non-negative integers; e - b == prod(shape) * sizeof(dtype);
// sorted by offset the tensors start at 0 and touch with no gap or overlap; the last end equals
// the data length exactly; __metadata__ maps strings to strings.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "src/core/atomic_output.h"
#include "src/core/dtype.h"
#include "src/core/mapped_file.h"
#include "src/core/tensor_view.h"

namespace deltakit {

constexpr uint64_t kSafetensorsMaxHeader = 100'000'000;

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the start of the data buffer
  uint64_t nbytes() const { return end - begin; }
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // sorted by offset (file order)
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // 8 + N
};

// Validate the header of a whole file image; `where` names the file in errors. Pure function
// (no I/O), so tests and fuzzers can feed it arbitrary bytes.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> file, const std::string& where);
// The same from the file's first bytes only (`head`: the whole header, or the whole file if it
// is shorter) and its size.
SafetensorsHeader parse_safetensors_header(std::span<const uint8_t> head, uint64_t file_size, const std::string& where);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return map_.path(); }
  const SafetensorsHeader& header() const { return header_; }
  const std::vector<SafetensorsEntry>& entries() const { return header_.entries; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const SafetensorsEntry* find(const std::string& name) const;
  TensorView view(const SafetensorsEntry& e) const;
  // Map an entry's pages in one call before reading it / unmap them when done (MappedFile).
  void populate(const SafetensorsEntry& e) const;
  void release(const SafetensorsEntry& e) const;
  const MappedFile& mapped() const { return map_; }
  uint64_t file_size() const { return map_.size(); }

 private:
  MappedFile map_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> by_name_;
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  uint64_t nbytes() const;
};

// Streams one safetensors file through an AtomicFile. Two ways to know the header:
//  * up front — construct with every TensorSpec; the header is written first;
//  * afterwards — construct with a byte reservation; tensors are declared as they come and the
//    header is written into the reserved space at commit (rewritten into a fresh file in the
//    rare case it outgrew the reservation).
class SafetensorsWriter {
 public:
  SafetensorsWriter(const std::string& path, std::vector<TensorSpec> specs,
                    std::map<std::string, std::string> metadata);
  SafetensorsWriter(const std::string& path, uint64_t header_reserve);

  // Declare the next tensor (deferred mode only; in up-front mode tensors follow the specs).
  void begin_tensor(const TensorSpec& spec);
  void write(const void* data, size_t n);  // bytes of the current tensor, in order
  void set_metadata(std::map<std::string, std::string> metadata);  // deferred mode
  void commit();
  const std::string& path() const { return file_->final_path(); }

 private:
  void advance_past_complete_tensors();
  std::string build_header(uint64_t pad_to) const;

  std::unique_ptr<AtomicFile> file_;
  std::vector<TensorSpec> specs_;
  std::map<std::string, std::string> metadata_;
  bool deferred_ = false;
  uint64_t reserve_ = 0;
  size_t current_ = 0;          // index of the tensor being written
  uint64_t current_done_ = 0;   // bytes of it written so far
};

// The padded header bytes (length prefix included) for these tensors in this order.
std::string safetensors_header_bytes(const std::vector<TensorSpec>& specs,
                                     const std::map<std::string, std::string>& metadata,
                                     uint64_t min_total = 0);

}  // namespace deltakit
