// Bit packing and sparse position coding shared by the codecs.
//
// Packed fields: element i's `width`-bit field occupies bits [i·width, (i+1)·width) of the byte
// stream, least significant bit first (numpy: unpackbits(..., bitorder="little"), then read
// fields LSB-first). width 1 is BitDelta's sign stream.
//
// Positions (sorted, distinct indices into n elements) are stored whichever way is smaller:
//   "bitmap": ceil(n/8) bytes, bit i set iff i is kept (LSB first);
//   "varint": for each position the gap g = pos − prev − 1 (prev = −1 before the first) as an
//             unsigned LEB128 varint (7 bits per byte, high bit = more bytes follow).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace deltakit {

uint64_t packed_bytes(uint64_t count, unsigned width);
// fields[i] must be < 2^width (width 1..16).
std::vector<uint8_t> pack_fields(std::span<const uint16_t> fields, unsigned width);
// The same into out[0, packed_bytes(fields.size(), width)), the first field at bit 0 of out[0].
void pack_fields_into(std::span<const uint16_t> fields, unsigned width, uint8_t* out);
uint16_t packed_field(const uint8_t* packed, uint64_t i, unsigned width);

struct CodedPositions {
  std::string coding;  // "bitmap" or "varint"
  std::vector<uint8_t> bytes;
};
CodedPositions encode_positions(std::span<const uint64_t> sorted_positions, uint64_t n);
// The same coding built as the positions come, a block at a time (both codings kept until
// take() picks by encode_positions' rule): for a pass that never holds them all.
class PositionsCoder {
 public:
  explicit PositionsCoder(uint64_t n);
  void add(uint64_t pos);  // increasing, < n
  void add(std::span<const uint64_t> positions);
  uint64_t count() const { return count_; }
  CodedPositions take();

 private:
  uint64_t n_, count_ = 0, prev_ = ~uint64_t{0};  // the gap before the first counts from −1
  std::vector<uint8_t> bitmap_, varint_;
};
// Validates: the coding, every position < n, strictly increasing, exactly `count` of them, no
// trailing bytes, no overlong varint. Throws Error(AdapterInvalid) with `where` on any fault.
std::vector<uint64_t> decode_positions(const std::string& coding, std::span<const uint8_t> bytes, uint64_t n,
                                       uint64_t count, const std::string& where);
// The same as 32-bit positions, for a tensor of at most 2^32 entries (half the memory).
std::vector<uint32_t> decode_positions32(const std::string& coding, std::span<const uint8_t> bytes, uint64_t n,
                                         uint64_t count, const std::string& where);
// Bytes the coding needs for `count` positions... of a bitmap over n (varint needs the data).
inline uint64_t bitmap_bytes(uint64_t n) { return (n + 7) / 8; }

}  // namespace deltakit
