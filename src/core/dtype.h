// Element types of safetensors tensors. F32/F16/BF16 are decoded to fp32 for arithmetic; every
// other type is known (sizes, names) so that it is validated and carried through byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace deltakit {

enum class DType : uint8_t {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64,
};

// Size of one element in bytes.
size_t dtype_size(DType t);
// The safetensors spelling ("BF16", "F32", ...).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);
// True for the types deltas are computed on (F32, F16, BF16).
inline bool dtype_is_float_decodable(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16;
}

}  // namespace deltakit
