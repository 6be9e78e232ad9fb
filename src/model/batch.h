// A batch the engine trains or measures on: B rows of T input tokens and T targets (the next
// token, or -1 where no loss is taken). Who fills it (corpus, skills, calibration text) lives in
// src/eval; the engine only reads it.
#pragma once

#include <cstdint>
#include <vector>

namespace deltakit {

struct Batch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> tokens, targets;
};

}  // namespace deltakit
