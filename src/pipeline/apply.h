// `deltakit apply`: base checkpoint + adapter -> a checkpoint folder that loads like the
// fine-tune (same tensor names, dtypes, side files), written atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deltakit {

struct ApplyOptions {
  std::string base, adapter, out;
  float alpha = 1.0f;
  bool force = false;  // apply even if base fingerprints differ (warns)
  bool overwrite = false;
  uint64_t max_shard_bytes = 5'000'000'000ull;
};

struct ApplyReport {
  uint64_t tensors = 0, bytes_written = 0, shards = 0;
  double seconds = 0;
  std::vector<std::string> warnings;
};

ApplyReport run_apply(const ApplyOptions& opt);

}  // namespace deltakit
