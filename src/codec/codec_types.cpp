#include "src/codec/codec_types.h"

#include <cmath>
#include <cstring>

#include "src/core/error.h"
#include "src/core/half.h"
#include "src/core/tensor_view.h"

namespace deltakit {

ValueType value_type_for(DType t) {
  if (t == DType::BF16) return {PartKind::U16, "bfloat16", DType::BF16};
  if (t == DType::F16) return {PartKind::U16, "float16", DType::F16};
  return {PartKind::F32, "", DType::F32};
}

std::vector<uint8_t> store_values(const ValueType& vt, std::span<const float> v) {
  std::vector<uint8_t> out(v.size() * dtype_size(vt.dtype));
  encode_from_f32(vt.dtype, v, out);
  return out;
}

std::vector<float> load_values(const ValueType& vt, std::span<const uint8_t> bytes) {
  std::vector<float> out(bytes.size() / dtype_size(vt.dtype));
  decode_to_f32(vt.dtype, bytes, 0, out);
  return out;
}

float round_to_value_type(const ValueType& vt, float x) {
  if (vt.dtype == DType::BF16) return bf16_to_f32(f32_to_bf16(x));
  if (vt.dtype == DType::F16) return f16_to_f32(f32_to_f16(x));
  return x;
}

}  // namespace deltakit
