#include "src/core/fingerprint.h"

#include <xxhash.h>

#include <cstdio>

namespace deltakit {

uint64_t fingerprint64(std::span<const uint8_t> bytes) {
  return XXH3_64bits(bytes.data(), bytes.size());
}

std::string fingerprint_hex(uint64_t fp) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fp));
  return buf;
}

}  // namespace deltakit
