// `deltakit merge CONFIG.yml --out DIR`: many fine-tunes (checkpoints or deltakit adapters,
// mixed freely) into one checkpoint, by a mergekit-style config (src/merge/merge_config.h).
// Tensor by tensor: each input is decoded to fp32 (an adapter through apply's own decoder, so
// merging adapters equals merging the checkpoints they apply to), merged, cast to the output
// dtype. The output loads like the base: same tensor names and order, the base's dtypes (or the
// config's), its side files, plus merge.yml and a README.md card. Under mpirun the output's
// shards are spread over the ranks as apply does: same bytes for any number of ranks and threads.
//
// Grown vocabularies: a fine-tune whose embed_tokens / lm_head has more rows than the base's
// (new tokens) is merged on the base's rows only, with a warning, as mergekit does; any other
// shape difference is an error.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/core/comm.h"
#include "src/gpu/device_codec.h"
#include "src/pipeline/progress.h"

namespace deltakit {

struct MergeOptions {
  std::string config;  // path of the YAML
  std::string out;
  std::string dtype;  // overrides the config's ("float32", "float16", "bfloat16")
  bool overwrite = false;
  bool force = false;            // adapters over a base whose fingerprints differ: warn instead of fail
  uint64_t max_shard_bytes = 0;  // 0: like the base (its largest shard file; 5GB if one file)
  int threads = 0;               // OpenMP threads per rank (0: the runtime's default)
  bool resume = false;
  ProgressOptions progress{.quiet = true, .log_json = ""};
  gpu::Device device = gpu::Device::Cpu;  // --device cuda: the task vectors' mix on the GPU
};

struct MergeReport {
  uint64_t tensors = 0, bytes_written = 0, bytes_read = 0, shards = 0;
  double seconds = 0;
  bool complete = false;  // true on rank 0
  std::vector<std::string> warnings;
};

MergeReport run_merge(const MergeOptions& opt, Comm& comm);
MergeReport run_merge(const MergeOptions& opt);  // one rank

}  // namespace deltakit
