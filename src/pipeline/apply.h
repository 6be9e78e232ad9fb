// `deltakit apply`: base checkpoint + adapter -> a checkpoint folder that loads like the
// fine-tune (same tensor names, dtypes, side files), written atomically.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "src/core/comm.h"
#include "src/gpu/device_codec.h"
#include "src/pipeline/progress.h"

namespace deltakit {

struct ApplyOptions {
  std::string base, adapter, out;
  float alpha = 1.0f;
  bool force = false;  // apply even if base fingerprints differ (warns)
  bool overwrite = false;
  uint64_t max_shard_bytes = 5'000'000'000ull;
  bool resume = false;   // continue a killed job: finished shards are kept
  unsigned threads = 0;  // shards written at once per rank (0: the rank's share of the cores)
  gpu::Device device =
      gpu::Device::Cpu;  // --device cuda: one-level BitDelta, DARE and quant tensors decoded and added there
  ProgressOptions progress{.quiet = true, .log_json = ""};
};

struct ApplyReport {
  uint64_t tensors = 0, bytes_written = 0, shards = 0;
  uint64_t resumed = 0;  // shards a previous run had finished
  double seconds = 0;
  bool complete = false;  // true on rank 0
  std::vector<std::string> warnings;
};

// Every rank calls it with the same options. The output's shards are planned as one process
// would cut them and spread over the ranks by bytes, one writer per shard, into the job's
// journal folder (".<out>.deltakit-apply"); rank 0 adds the index and side files and renames
// the folder into place. Same bytes for any number of ranks.
ApplyReport run_apply(const ApplyOptions& opt, Comm& comm);
ApplyReport run_apply(const ApplyOptions& opt);  // one rank

class AdapterReader;
class Checkpoint;
struct TensorView;
// Every base tensor has an adapter entry of the same dtype and shape, and nothing else is in it.
void check_adapter_matches_base(const Checkpoint& base, const AdapterReader& ad);
// The tensor an adapter decodes to over its base tensor, in the base's dtype: the bytes apply
// writes (`merge` reads adapters through this, so both agree bit for bit). A base fingerprint
// that differs is an error unless `force` (then a warning).
// The base tensor is the one the adapter was made from (its fingerprint): else Error naming
// base_path, or with `force` a warning.
void check_base_fingerprint(const AdapterReader& ad, const TensorView& base, const std::string& base_path, bool force,
                            std::vector<std::string>& warnings);
// The bytes go to `sink` in order, a block at a time where the stored form has a block path
// (src/codec/codec.h's BlockApplier): no tensor-sized δ̂ or output is held.
// `dev`: the GPU that decodes what it can (src/gpu/device_codec.h), nullptr for the CPU.
using TensorSink = std::function<void(std::span<const uint8_t>)>;
void apply_adapter_tensor(const AdapterReader& ad, const TensorView& base, float alpha, bool force,
                          const std::string& base_path, const TensorSink& sink, std::vector<std::string>& warnings,
                          gpu::CudaDevice* dev = nullptr);
// The same into `out` (resized to the tensor's bytes).
void apply_adapter_tensor(const AdapterReader& ad, const TensorView& base, float alpha, bool force,
                          const std::string& base_path, std::vector<uint8_t>& out, std::vector<std::string>& warnings,
                          gpu::CudaDevice* dev = nullptr);

}  // namespace deltakit
