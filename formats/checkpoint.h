// Hugging Face checkpoint folders: `model.safetensors`, or shards named by
// `model.safetensors.index.json` ({"metadata": {"total_size": N}, "weight_map": {tensor: shard}}).
// Opening one validates every shard header and the index before any tensor byte is touched:
// shard paths must stay inside the folder (no absolute paths, `..` or links leading out), every
// tensor must be listed exactly once and be present in the shard the index names.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/safetensors.h"

namespace deltakit {

constexpr const char* kIndexFileName = "model.safetensors.index.json";
constexpr const char* kSingleFileName = "model.safetensors";

class Checkpoint {
 public:
  // `path`: a checkpoint folder, or a single .safetensors file.
  explicit Checkpoint(const std::string& path);

  const std::string& path() const { return path_; }
  bool sharded() const { return sharded_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& shards() const { return shards_; }

  struct Located {
    const SafetensorsFile* file;
    const SafetensorsEntry* entry;
  };
  // Tensor names in storage order (shard by shard, by offset).
  const std::vector<std::string>& names() const { return names_; }
  const Located* find(const std::string& name) const;
  const Located& at(const std::string& name) const;  // logic_error if absent
  TensorView view(const std::string& name) const;
  // view() with the tensor's pages mapped in one call; release() unmaps them when done.
  TensorView acquire(const std::string& name, bool populate = true) const;
  void release(const std::string& name) const;
  // The shard file (relative to the folder) that holds `name`.
  std::string shard_of(const std::string& name) const;
  uint64_t total_tensor_bytes() const;
  // Error(Io) if any shard shrank while mapped (call after a pass, before committing output).
  void check_intact() const;

 private:
  void open_index(const std::string& index_path);
  void add_shard(const std::string& file_path);

  std::string path_;
  std::string folder_;
  bool sharded_ = false;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<std::string> names_;
  std::map<std::string, Located> by_name_;
};

// Files of a checkpoint folder that are not weights (config.json, generation_config.json,
// tokenizer files, ...): regular files that are neither *.safetensors nor the index.
std::vector<std::string> checkpoint_side_files(const std::string& folder);

// How tensors are cut into shards: greedily in the given order; a tensor larger than the limit
// gets a shard of its own (Hugging Face's rule). One shard is named model.safetensors, more are
// model-0000i-of-0000n.safetensors with an index.
struct ShardPlan {
  std::vector<std::vector<TensorSpec>> shards;
  std::vector<uint64_t> bytes;
  std::string name(size_t i) const;
};
ShardPlan plan_shards(std::vector<TensorSpec> specs, uint64_t max_shard_bytes);
// model.safetensors.index.json for a plan of more than one shard (nothing for one).
void write_shard_index(const std::string& folder, const ShardPlan& plan);

// Write tensors as a checkpoint into `folder` (which must exist, normally an AtomicDirectory's
// temporary): one model.safetensors if everything fits in max_shard_bytes, else HF-style shards
// model-0000i-of-0000n.safetensors plus the index. Shards are cut greedily in the given order;
// a tensor larger than the limit gets a shard of its own (Hugging Face's rule).
class CheckpointWriter {
 public:
  CheckpointWriter(std::string folder, std::vector<TensorSpec> specs, uint64_t max_shard_bytes,
                   std::map<std::string, std::string> metadata = {});
  // Bytes of the tensors, in spec order, in any chunking.
  void write(const void* data, size_t n);
  void commit();  // all shards and the index
  size_t shard_count() const { return plan_.shards.size(); }

 private:
  void open_next_shard();

  std::string folder_;
  std::map<std::string, std::string> metadata_;
  ShardPlan plan_;
  size_t shard_ = 0;
  uint64_t shard_done_ = 0;
  std::unique_ptr<SafetensorsWriter> writer_;
};

// "5GB", "500MB", "1024" (bytes), "2GiB" -> bytes. Throws Error(Usage).
uint64_t parse_byte_size(const std::string& text);

}  // namespace deltakit
