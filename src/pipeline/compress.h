// `deltakit compress`: base + fine-tune checkpoints -> one adapter file, tensor by tensor.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "formats/h5_chunks.h"
#include "src/core/comm.h"
#include "src/gpu/device_codec.h"
#include "src/pipeline/distill.h"
#include "src/pipeline/progress.h"

namespace deltakit {

struct CompressOptions {
  std::string base, finetuned, out;
  std::string recipe = "raw";  // one recipe for every tensor (or those matching `only`)...
  std::string only;            // glob: tensors the recipe applies to; the rest raw
  std::string rules_file;      // ...or a rules file (overrides recipe/only)
  uint64_t seed = 0;           // default seed of dare / randomized lowrank
  unsigned threads = 0;        // 0: all cores
  int zstd_level = kDefaultZstdLevel;
  // a tensor whose fp32 δ is over this many MB is split into row blocks of about as much that the
  // ranks and threads share (src/codec/split_pass.h: the same adapter bytes); 0: never; negative
  // (auto): over 256 MB and over one worker's share of the model's bytes, where a whole tensor
  // would leave the other workers idle (splitting costs a join on one worker)
  double split_mb = -1;
  bool overwrite = false;
  bool resume = false;                    // continue a killed job from its journal
  gpu::Device device = gpu::Device::Cpu;  // --device cuda: the fused pass's statistics on the GPU
  ProgressOptions progress{.quiet = true, .log_json = ""};
  // then fit the bitdelta scales to the fine-tune's logits (distill.h): the calibration and
  // optimizer settings; its base, fine-tune and files are this job's
  std::optional<DistillOptions> distill;
};

struct CompressTensorReport {
  std::string name, codec, fallback;  // fallback: why the recipe was replaced by raw
  uint64_t numel = 0, input_bytes = 0, stored_bytes = 0, exact_patches = 0, nonfinite = 0;
  double rel_error = 0;
  double delta_sq = 0;  // ‖δ‖² (finite entries), to total the error over the model
};
// how a rank hands a tensor's report to rank 0 (in its record in the journal)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CompressTensorReport, name, codec, fallback, numel, input_bytes,
                                                stored_bytes, exact_patches, nonfinite, rel_error, delta_sq)

struct CompressReport {
  std::vector<CompressTensorReport> tensors;
  uint64_t input_bytes = 0;    // bytes of the fine-tune's tensors
  uint64_t adapter_bytes = 0;  // size of the written file
  double rel_error = 0;        // ‖δ − δ̂‖ / ‖δ‖ over the whole model
  double seconds = 0;
  uint64_t resumed = 0;   // tensors a previous run had finished
  bool complete = false;  // false on ranks other than 0 (which hold no report)
  std::vector<std::string> warnings;
  std::optional<DistillReport> distillation;  // with CompressOptions::distill
};

// Every rank of `comm` calls it with the same options. Tensors are partitioned by bytes over
// the ranks; each rank encodes its tensors into records (src/pipeline/journal_part.h) in the job's journal
// (".<out>.deltakit-compress" beside the output), and rank 0 stitches them, in the fine-tune's
// tensor order, into the adapter, copying compressed chunks as they are. The output is the
// same bytes for any number of ranks and threads. With `distill`, the adapter is first written
// under a hidden name beside the output, then distilled into the output by rank 0 (the output is
// replaced only once whole, and the hidden file is removed however the job ends).
CompressReport run_compress(const CompressOptions& opt, Comm& comm);
CompressReport run_compress(const CompressOptions& opt);  // one rank

}  // namespace deltakit
