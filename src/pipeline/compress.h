// `deltakit compress`: base + fine-tune checkpoints -> one adapter file, tensor by tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deltakit {

struct CompressOptions {
  std::string base, finetuned, out;
  std::string recipe = "raw";  // one recipe for every tensor (or those matching `only`)...
  std::string only;            // glob: tensors the recipe applies to; the rest raw
  std::string rules_file;      // ...or a rules file (overrides recipe/only)
  uint64_t seed = 0;           // default seed of dare / randomized lowrank
  unsigned threads = 0;        // 0: all cores
  int zstd_level = 3;
  bool overwrite = false;
};

struct CompressTensorReport {
  std::string name, codec, fallback;  // fallback: why the recipe was replaced by raw
  uint64_t numel = 0, input_bytes = 0, stored_bytes = 0, exact_patches = 0, nonfinite = 0;
  double rel_error = 0;
};

struct CompressReport {
  std::vector<CompressTensorReport> tensors;
  uint64_t input_bytes = 0;    // bytes of the fine-tune's tensors
  uint64_t adapter_bytes = 0;  // size of the written file
  double seconds = 0;
  std::vector<std::string> warnings;
};

CompressReport run_compress(const CompressOptions& opt);

}  // namespace deltakit
