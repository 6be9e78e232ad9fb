// Importance files (src/eval/importance.h) as the cherry codec and `plan` read them: each file
// opened once, each tensor's H decoded to fp32 and checked (finite, >= 0, the right size).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "formats/safetensors.h"
#include "src/codec/cherry.h"

namespace deltakit {

class ImportanceFiles {
 public:
  // kind "fisher": numel values (one per weight); "act": cols values (one per input column).
  std::vector<float> load(const std::string& file, const std::string& kind, const std::string& tensor, uint64_t numel,
                          uint64_t cols);
  std::vector<float> load(const CherryParams& c, const std::string& tensor, uint64_t numel, uint64_t cols) {
    return load(c.file, c.importance, tensor, numel, cols);
  }

 private:
  std::mutex mutex_;  // compress's workers load at once
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

}  // namespace deltakit
