// 64-bit fingerprints of tensor bytes (XXH3-64, seed 0): an adapter records one per base
// tensor, and apply refuses a base whose fingerprints differ. XXH3 runs near memory bandwidth,
// so fingerprinting the base costs little beside reading it.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace deltakit {

uint64_t fingerprint64(std::span<const uint8_t> bytes);

// The same fingerprint of bytes handed over in pieces, in order (a streaming pass's blocks).
class Fingerprinter {
 public:
  Fingerprinter();
  ~Fingerprinter();
  Fingerprinter(const Fingerprinter&) = delete;
  Fingerprinter& operator=(const Fingerprinter&) = delete;
  void add(std::span<const uint8_t> bytes);
  uint64_t value() const;

 private:
  void* state_;  // XXH3_state_t
};
std::string fingerprint_hex(uint64_t fp);  // 16 lowercase hex digits

struct TensorView;
// fingerprint64 of a tensor's bytes read a window at a time (read_elements: pread where the view
// knows its file, so the mapping's pages are not made resident).
uint64_t fingerprint_by_read(const TensorView& t);

}  // namespace deltakit
