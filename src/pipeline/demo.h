// `deltakit demo`: the main job on the embedded default. Until the model engine exists it is the
// lossless round trip on generated Llama-shaped checkpoints: fixture -> diff -> raw compress ->
// apply -> byte-for-byte check against the fine-tune, for each requested dtype.
#pragma once

#include <string>
#include <vector>

namespace deltakit {

struct DemoRow {
  std::string dtype, layout;
  uint64_t tensors = 0, finetune_bytes = 0, adapter_bytes = 0, mismatched_tensors = 0;
  double rel_delta = 0;  // ‖δ‖ / ‖θ_base‖ over the model
  double compress_s = 0, apply_s = 0;
};

// Writes everything under `out` (created; reused folders are replaced when overwrite).
std::vector<DemoRow> run_demo(const std::string& out, const std::string& size, bool overwrite);

}  // namespace deltakit
