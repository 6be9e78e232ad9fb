#include "src/codec/bits.h"

#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "src/core/error.h"

namespace deltakit {

uint64_t packed_bytes(uint64_t count, unsigned width) { return (count * width + 7) / 8; }

std::vector<uint8_t> pack_fields(std::span<const uint16_t> fields, unsigned width) {
  std::vector<uint8_t> out(packed_bytes(fields.size(), width));
  pack_fields_into(fields, width, out.data());
  return out;
}

void pack_fields_into(std::span<const uint16_t> fields, unsigned width, uint8_t* out) {
  static_assert(std::endian::native == std::endian::little, "the packed words are stored as they lie in memory");
  // 8 fields fill exactly `width` bytes: one word built and stored per 8 (the bit-at-a-time loop
  // was 13% of a quant compress)
  uint64_t i = 0;
  const uint64_t n = fields.size();
  // the widths of quant:bits=2/4/8 as plain byte loops, which vectorize (a word per 8 fields with a
  // run-time width did not: a third of a 4-bit quant compress's own time)
  const uint16_t* f = fields.data();
  if (width == 8) {
    for (; i < n / 8 * 8; ++i) out[i] = static_cast<uint8_t>(f[i]);
    out += i;
  } else if (width == 4) {
    for (uint64_t j = 0; j < n / 8 * 4; ++j) out[j] = static_cast<uint8_t>(f[2 * j] | f[2 * j + 1] << 4);
    i = n / 8 * 8, out += n / 8 * 4;
  } else if (width == 2) {
    for (uint64_t j = 0; j < n / 8 * 2; ++j)
      out[j] = static_cast<uint8_t>(f[4 * j] | f[4 * j + 1] << 2 | f[4 * j + 2] << 4 | f[4 * j + 3] << 6);
    i = n / 8 * 8, out += n / 8 * 2;
  } else if (width <= 8) {
    for (; i + 8 <= n; i += 8, out += width) {
      uint64_t acc = 0;
      for (unsigned k = 0; k < 8; ++k) acc |= static_cast<uint64_t>(fields[i + k]) << (k * width);
      std::memcpy(out, &acc, width);
    }
  } else {
    for (; i + 8 <= n; i += 8, out += width) {
      unsigned __int128 acc = 0;
      for (unsigned k = 0; k < 8; ++k) acc |= static_cast<unsigned __int128>(fields[i + k]) << (k * width);
      std::memcpy(out, &acc, width);
    }
  }
  uint64_t acc = 0, byte = 0;
  unsigned held = 0;  // bits in acc
  for (; i < n; ++i) {
    acc |= static_cast<uint64_t>(fields[i]) << held;
    held += width;
    while (held >= 8) out[byte++] = static_cast<uint8_t>(acc), acc >>= 8, held -= 8;
  }
  if (held) out[byte] = static_cast<uint8_t>(acc);
}

uint16_t packed_field(const uint8_t* packed, uint64_t i, unsigned width) {
  uint64_t bit = i * width;
  uint32_t v = 0;
  // a field of <= 16 bits spans at most 3 bytes
  for (unsigned got = 0; got < width;) {
    uint64_t byte = bit / 8;
    unsigned off = bit % 8, take = std::min<unsigned>(8 - off, width - got);
    v |= ((packed[byte] >> off) & ((1u << take) - 1u)) << got;
    got += take;
    bit += take;
  }
  return static_cast<uint16_t>(v);
}

namespace {
unsigned varint_size(uint64_t v) {
  unsigned s = 1;
  while (v >= 0x80) v >>= 7, ++s;
  return s;
}
void append_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) out.push_back(static_cast<uint8_t>(v | 0x80)), v >>= 7;
  out.push_back(static_cast<uint8_t>(v));
}
// The coding rule: varint where it is strictly smaller than the bitmap.
bool varint_is_smaller(uint64_t varint_bytes, uint64_t n) { return varint_bytes < bitmap_bytes(n); }
}  // namespace

CodedPositions encode_positions(std::span<const uint64_t> pos, uint64_t n) {
  uint64_t varint_total = 0, prev = ~uint64_t{0};
  for (uint64_t p : pos) varint_total += varint_size(p - prev - 1), prev = p;
  CodedPositions c;
  if (varint_is_smaller(varint_total, n)) {
    c.coding = "varint";
    c.bytes.reserve(varint_total);
    prev = ~uint64_t{0};
    for (uint64_t p : pos) append_varint(c.bytes, p - prev - 1), prev = p;
  } else {
    c.coding = "bitmap";
    c.bytes.assign(bitmap_bytes(n), 0);
    for (uint64_t p : pos) c.bytes[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
  }
  return c;
}

PositionsCoder::PositionsCoder(uint64_t n) : n_(n), bitmap_(bitmap_bytes(n), 0) {}

void PositionsCoder::add(uint64_t pos) { add({&pos, 1}); }

void PositionsCoder::add(std::span<const uint64_t> positions) {
  // the varints of up to 256 positions into a local buffer, then appended at once: a push_back
  // per byte (a capacity check and a size store each) was half of this loop
  constexpr size_t kRun = 256;
  uint8_t run[kRun * 10];  // a varint of 64 bits takes at most 10 bytes
  uint8_t* bitmap = bitmap_.data();
  for (size_t at = 0; at < positions.size(); at += kRun) {
    const size_t m = std::min(kRun, positions.size() - at);
    size_t len = 0;
    for (size_t j = 0; j < m; ++j) {
      const uint64_t pos = positions[at + j];
      bitmap[pos / 8] |= static_cast<uint8_t>(1u << (pos % 8));
      uint64_t v = pos - prev_ - 1;
      for (; v >= 0x80; v >>= 7) run[len++] = static_cast<uint8_t>(v | 0x80);
      run[len++] = static_cast<uint8_t>(v);
      prev_ = pos;
    }
    varint_.insert(varint_.end(), run, run + len);
  }
  count_ += positions.size();
}

CodedPositions PositionsCoder::take() {
  if (varint_is_smaller(varint_.size(), n_)) return {"varint", std::move(varint_)};
  return {"bitmap", std::move(bitmap_)};
}

template <class T>
std::vector<T> decode_positions_as(const std::string& coding, std::span<const uint8_t> bytes, uint64_t n,
                                   uint64_t count, const std::string& where) {
  auto bad = [&](const std::string& what) { return Error(ErrorCode::AdapterInvalid, where, what); };
  if (count > n) throw bad("position count " + std::to_string(count) + " exceeds the tensor's " + std::to_string(n));
  if (n - 1 > std::numeric_limits<T>::max() && n > 0)
    throw std::logic_error("decode_positions_as: positions of this tensor do not fit the element type");
  std::vector<T> out;
  out.reserve(count);
  if (coding == "bitmap") {
    if (bytes.size() != bitmap_bytes(n)) throw bad("position bitmap has the wrong size");
    for (uint64_t b = 0; b < bytes.size(); ++b) {
      uint8_t v = bytes[b];
      while (v) {
        unsigned k = static_cast<unsigned>(__builtin_ctz(v));
        uint64_t p = b * 8 + k;
        if (p >= n) throw bad("position bitmap has bits past the tensor's end");
        if (out.size() == count) throw bad("position bitmap holds more than the declared count");
        out.push_back(static_cast<T>(p));
        v &= static_cast<uint8_t>(v - 1);
      }
    }
  } else if (coding == "varint") {
    uint64_t prev = ~uint64_t{0};
    size_t i = 0;
    while (i < bytes.size()) {
      // eight one-byte gaps at once where the next eight bytes are (most of a DARE tensor's):
      // positions rise, so the last of them lying inside the tensor checks all eight
      if (i + 8 <= bytes.size() && out.size() + 8 <= count) {
        uint64_t word;
        std::memcpy(&word, bytes.data() + i, 8);
        if ((word & 0x8080808080808080ull) == 0) {
          T run[8];
          uint64_t p = prev;
          for (int b = 0; b < 8; ++b) {
            p += 1 + ((word >> (8 * b)) & 0x7f);
            run[b] = static_cast<T>(p);
          }
          if (p >= n) throw bad("position past the tensor's end");
          out.insert(out.end(), run, run + 8);
          prev = p, i += 8;
          continue;
        }
      }
      uint64_t g = 0;
      unsigned shift = 0;
      for (;;) {
        if (i >= bytes.size()) throw bad("position varint stream ends inside a number");
        uint8_t b = bytes[i++];
        if (shift == 63 && (b & 0x7e)) throw bad("position varint overflows 64 bits");
        g |= static_cast<uint64_t>(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
        if (shift > 63) throw bad("position varint is longer than 10 bytes");
      }
      if (g >= n || prev + 1 + g >= n || (prev != ~uint64_t{0} && prev + 1 + g <= prev))
        throw bad("position past the tensor's end");
      prev = prev + 1 + g;
      if (out.size() == count) throw bad("position stream holds more than the declared count");
      out.push_back(static_cast<T>(prev));
    }
  } else {
    throw bad("unknown position coding \"" + coding + "\"");
  }
  if (out.size() != count)
    throw bad("position stream holds " + std::to_string(out.size()) + " positions, expected " + std::to_string(count));
  return out;
}

std::vector<uint64_t> decode_positions(const std::string& coding, std::span<const uint8_t> bytes, uint64_t n,
                                       uint64_t count, const std::string& where) {
  return decode_positions_as<uint64_t>(coding, bytes, n, count, where);
}

std::vector<uint32_t> decode_positions32(const std::string& coding, std::span<const uint8_t> bytes, uint64_t n,
                                         uint64_t count, const std::string& where) {
  return decode_positions_as<uint32_t>(coding, bytes, n, count, where);
}

}  // namespace deltakit
