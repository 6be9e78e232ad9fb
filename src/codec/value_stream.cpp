#include "src/codec/value_stream.h"

namespace deltakit {

const char* scale_unit_name(ScaleUnit u) {
  switch (u) {
    case ScaleUnit::Matrix: return "matrix";
    case ScaleUnit::Row: return "row";
    case ScaleUnit::Group: return "group";
  }
  return "?";
}

std::vector<uint64_t> unit_offsets(ScaleUnit u, uint64_t group, uint64_t count, std::span<const uint64_t> rows) {
  if (u == ScaleUnit::Row) return {rows.begin(), rows.end()};
  if (u == ScaleUnit::Matrix) return {0, count};
  std::vector<uint64_t> off;
  off.reserve(count / group + 2);
  for (uint64_t b = 0; b < count; b += group) off.push_back(b);
  off.push_back(count);
  return off;
}

}  // namespace deltakit
