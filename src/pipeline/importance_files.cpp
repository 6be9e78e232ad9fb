#include "src/pipeline/importance_files.h"

#include <cmath>

#include "src/core/error.h"
#include "src/core/tensor_view.h"

namespace deltakit {

std::vector<float> ImportanceFiles::load(const std::string& file, const std::string& kind, const std::string& tensor,
                                         uint64_t numel, uint64_t cols) {
  const SafetensorsFile* opened = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = files_.find(file);
    if (it == files_.end()) it = files_.emplace(file, std::make_unique<SafetensorsFile>(file)).first;
    opened = it->second.get();
  }
  const SafetensorsFile& f = *opened;
  const SafetensorsEntry* e = f.find(tensor);
  if (!e) throw Error(ErrorCode::TensorSetMismatch, file, "importance file has no tensor '" + tensor + "'");
  TensorView v = f.view(*e);
  const bool fisher = kind == "fisher";
  const uint64_t want = fisher ? numel : cols;
  if (!dtype_is_float_decodable(v.dtype) || v.numel() != want)
    throw Error(ErrorCode::ShapeMismatch, file,
                "importance '" + tensor + "' must be " + std::to_string(want) + " F32/F16/BF16 values (" +
                    (fisher ? "one per weight" : "one per input column") + "), found " + shape_string(v.shape) + " " +
                    std::string(dtype_name(v.dtype)));
  std::vector<float> h(want);
  decode_to_f32(v.dtype, v.bytes, 0, h);
  for (float x : h)
    if (!std::isfinite(x) || x < 0)
      throw Error(ErrorCode::NonFinite, file, "importance '" + tensor + "' holds a negative or non-finite value");
  return h;
}

}  // namespace deltakit
