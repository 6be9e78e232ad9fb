// The adapter file (format_version 1): one HDF5 file.
//   /                 attributes: format "deltakit-adapter", format_version 1, recipe, rules,
//                     seed, deltakit_version, base, finetuned, tensor_count, base_fingerprint
//                     (XXH3-64 over the per-tensor fingerprints in storage order, 16 hex)
//   /tensors/<name>/  one group per tensor (name escaped, see h5_escape_name), attributes:
//                     name, codec, dtype, shape, base_fingerprint (uint64, XXH3-64 of the base
//                     tensor's bytes), rel_error, and the codec's "<codec>.<key>" attributes;
//                     datasets: the codec's parts, "<codec>.<what>"
//   /side_files/<f>   uint8 datasets: the fine-tune's config.json, tokenizer files, ...
// Every dataset is chunked (about 1 MiB per chunk), zstd-compressed (filter 32015) and
// Fletcher32-checksummed; 16-bit float values are uint16 with an attribute "encoding"
// ("bfloat16" or "float16"). docs/formats.md has the full layout and an h5py decoder.
#pragma once

#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "formats/h5_chunks.h"
#include "formats/h5_support.h"
#include "src/core/atomic_output.h"
#include "src/core/dtype.h"
#include "src/core/parts.h"

namespace deltakit {

constexpr const char* kAdapterFormat = "deltakit-adapter";
constexpr int kAdapterVersion = 1;

class AdapterReader;

// The HDF5 file type of a part's elements (little-endian U8/U16/U32/U64, IEEE F32).
hid_t h5_part_type(PartKind k);

class AdapterWriter {
 public:
  explicit AdapterWriter(const std::string& path, int zstd_level = kDefaultZstdLevel);
  // The file written in `temp_folder` until commit() renames it to `path` (AtomicFile).
  AdapterWriter(const std::string& path, int zstd_level, const std::string& temp_folder);
  ~AdapterWriter();
  // Writes one tensor's group; returns the bytes its datasets occupy in the file.
  uint64_t add_tensor(const std::string& name, const Json& attrs, const std::vector<Part>& parts);
  // The same with parts already through the filter pipeline (filter_part, formats/h5_chunks.h):
  // what a worker holding the HDF5 lock calls after compressing without it.
  uint64_t add_tensor(const std::string& name, const Json& attrs, const std::vector<FilteredPart>& parts);
  // The same with the chunks fetched one at a time (a compress journal's record on disk, so the
  // stitch holds one chunk, not a tensor): `layouts` are the parts without their chunks,
  // `chunk_counts` how many each has, `chunk(p, c)` the filtered bytes of chunk c of part p.
  using ChunkSource = std::function<std::span<const uint8_t>(size_t part, size_t chunk)>;
  uint64_t add_tensor(const std::string& name, const Json& attrs, const std::vector<FilteredPart>& layouts,
                      const std::vector<size_t>& chunk_counts, const ChunkSource& chunk);
  // Copies tensor `name` of another adapter as it is (distillation keeps every tensor it does not
  // rewrite): the compressed, checksummed chunks are moved without decoding them. Returns its
  // stored bytes.
  uint64_t copy_tensor(const AdapterReader& from, const std::string& name);
  // The same with these attributes, and with the parts named in `replaced` written anew instead
  // of copied (scale distillation rewrites only its scales).
  uint64_t copy_tensor(const AdapterReader& from, const std::string& name, const Json& attrs,
                       const std::vector<Part>& replaced);
  // Root attributes and side files, then close, fsync, rename into place, fsync the folder.
  void commit(const Json& root_attrs, const std::map<std::string, std::string>& side_files);

 private:
  uint64_t write_dataset(hid_t group, const Part& p);
  uint64_t write_dataset(hid_t group, const FilteredPart& p);
  uint64_t write_dataset(hid_t group, const FilteredPart& layout, size_t chunks, const ChunkSource& chunk);
  AtomicFile file_;
  int level_;
  H5Handle h5_, tensors_;
};

class AdapterReader;

// The parts of one tensor, read on demand with every dataset property checked first.
class AdapterTensorSource : public PartSource {
 public:
  AdapterTensorSource(const AdapterReader& r, std::string name) : r_(r), name_(std::move(name)) {}
  bool has(const std::string& part) const override;
  std::vector<std::string> names() const override;
  std::vector<uint8_t> read(const std::string& part, PartKind kind, const std::vector<uint64_t>& dims,
                            const std::string& encoding) const override;

 private:
  const AdapterReader& r_;
  std::string name_;
};

class AdapterReader {
 public:
  // Opens and validates the container: root attributes, the link tree (hard links only, known
  // groups), every tensor's required attributes and types. Payloads are read later, on demand.
  // kIsolated (the default) first walks the file in a child process (formats/adapter_preflight.h);
  // kTrusted is that child's own walk.
  enum Walk { kIsolated, kTrusted };
  explicit AdapterReader(const std::string& path, Walk walk = kIsolated);
  // Opens every dataset of every tensor and walks its type, space, properties, chunk index and
  // attributes (not its data, which our own filters check): the child's walk, so each HDF5
  // metadata path apply takes has run once before the parent takes it.
  void walk_every_dataset() const;
  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }
  const Json& root() const { return root_; }
  const std::vector<std::string>& names() const { return names_; }  // storage order
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Attributes of a tensor (validated: name, codec, dtype, shape, base_fingerprint, rel_error).
  const Json& attrs(const std::string& name) const;
  DType dtype(const std::string& name) const;
  std::vector<uint64_t> shape(const std::string& name) const;
  uint64_t base_fingerprint(const std::string& name) const;
  AdapterTensorSource source(const std::string& name) const { return {*this, name}; }
  uint64_t stored_bytes(const std::string& name) const;  // bytes of its datasets in the file
  std::string where(const std::string& name) const { return path_ + ": tensor '" + name + "'"; }
  const std::map<std::string, std::string>& side_files() const { return side_files_; }

 private:
  friend class AdapterTensorSource;
  friend class AdapterWriter;
  struct Tensor {
    std::string group;  // escaped link name
    Json attrs;
    std::vector<std::string> parts;
  };
  const Tensor& tensor(const std::string& name) const;
  H5Handle open_part(const Tensor& t, const std::string& part) const;
  std::vector<uint8_t> read_part(const std::string& name, const std::string& part, PartKind kind,
                                 const std::vector<uint64_t>& dims, const std::string& encoding) const;
  std::string path_;
  uint64_t file_size_ = 0;
  H5Handle h5_;
  Json root_;
  std::vector<std::string> names_;
  std::map<std::string, Tensor> tensors_;
  std::map<std::string, std::string> side_files_;
};

// True if `path` is an HDF5 file whose root says format "deltakit-adapter".
bool is_adapter_file(const std::string& path);

}  // namespace deltakit
