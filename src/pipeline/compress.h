// `deltakit compress`: base + fine-tune checkpoints -> one adapter file, tensor by tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deltakit {

struct CompressOptions {
  std::string base, finetuned, out;
  std::string recipe = "raw";
  bool overwrite = false;
};

struct CompressTensorReport {
  std::string name, mode;
  uint64_t numel = 0, input_bytes = 0, stored_bytes = 0, exact_patches = 0, nonfinite = 0;
};

struct CompressReport {
  std::vector<CompressTensorReport> tensors;
  uint64_t input_bytes = 0;   // bytes of the fine-tune's tensors
  uint64_t adapter_bytes = 0; // size of the written file
  double seconds = 0;
  std::vector<std::string> warnings;
};

CompressReport run_compress(const CompressOptions& opt);

}  // namespace deltakit
