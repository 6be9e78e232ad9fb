// What the codecs share beyond the parts they exchange (src/core/parts.h): the dtype their
// values are stored in. Codecs know nothing about files: tests feed them plain vectors.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "src/core/dtype.h"
#include "src/core/parts.h"

namespace deltakit {

// The dtype sparse values, cherries and factors are stored in: the tensor's own 16-bit float
// dtype, fp32 for everything else.
struct ValueType {
  PartKind kind;
  std::string encoding;
  DType dtype;
};
ValueType value_type_for(DType tensor_dtype);
std::vector<uint8_t> store_values(const ValueType& vt, std::span<const float> v);
std::vector<float> load_values(const ValueType& vt, std::span<const uint8_t> bytes);
float round_to_value_type(const ValueType& vt, float x);

}  // namespace deltakit
