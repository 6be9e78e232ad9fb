#include "src/core/fingerprint.h"

// XXH3 compiled here, with this build's flags: Debian's libxxhash is built for baseline x86-64
// (SSE2), and with -march=native the header picks AVX2 or AVX-512 (the same hash, defined bit by
// bit; 2-3x the speed, and every compress hashes all of the base)
// (GCC 12 warns inside its own AVX-512 headers: their "undefined" pass-through operands)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#define XXH_INLINE_ALL
#include <xxhash.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <cstdio>
#include <new>
#include <vector>

#include "src/core/dtype.h"
#include "src/core/tensor_view.h"

namespace deltakit {

uint64_t fingerprint64(std::span<const uint8_t> bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

Fingerprinter::Fingerprinter() : state_(XXH3_createState()) {
  if (!state_) throw std::bad_alloc();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
Fingerprinter::~Fingerprinter() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void Fingerprinter::add(std::span<const uint8_t> bytes) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), bytes.data(), bytes.size());
}
uint64_t Fingerprinter::value() const { return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_)); }

std::string fingerprint_hex(uint64_t fp) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fp));
  return buf;
}

uint64_t fingerprint_by_read(const TensorView& t) {
  const uint64_t es = dtype_size(t.dtype), n = t.numel(), window = std::max<uint64_t>(1, (uint64_t{1} << 20) / es);
  std::vector<uint8_t> buf(std::min(n, window) * es);
  Fingerprinter f;
  for (uint64_t first = 0; first < n; first += window) {
    const uint64_t m = std::min(window, n - first);
    read_elements(t, first, m, buf.data());
    f.add({buf.data(), m * es});
  }
  return f.value();
}

}  // namespace deltakit
