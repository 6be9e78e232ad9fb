// Overflow-checked size arithmetic: every size or offset read from a file goes through these
// (safetensors' checked_add / checked_mul), so a crafted header can never wrap around.
#pragma once

#include <cstdint>
#include <optional>

namespace deltakit {

inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

}  // namespace deltakit
