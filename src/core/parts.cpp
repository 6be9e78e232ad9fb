#include "src/core/parts.h"

#include <cmath>
#include <cstring>

#include "src/core/error.h"

namespace deltakit {

size_t part_kind_size(PartKind k) {
  switch (k) {
    case PartKind::U8: return 1;
    case PartKind::U16: return 2;
    case PartKind::U32: return 4;
    case PartKind::U64: return 8;
    case PartKind::F32: return 4;
  }
  return 1;
}

const char* part_kind_name(PartKind k) {
  switch (k) {
    case PartKind::U8: return "uint8";
    case PartKind::U16: return "uint16";
    case PartKind::U32: return "uint32";
    case PartKind::U64: return "uint64";
    case PartKind::F32: return "float32";
  }
  return "?";
}

uint64_t Part::count() const {
  uint64_t n = 1;
  for (uint64_t d : dims) n *= d;
  return n;
}

std::vector<std::string> EncodedSource::names() const {
  std::vector<std::string> out;
  for (const auto& p : e_.parts) out.push_back(p.name);
  return out;
}

bool EncodedSource::has(const std::string& part) const {
  for (const auto& p : e_.parts)
    if (p.name == part) return true;
  return false;
}

std::vector<uint8_t> EncodedSource::read(const std::string& part, PartKind kind, const std::vector<uint64_t>& dims,
                                         const std::string& encoding) const {
  for (const auto& p : e_.parts) {
    if (p.name != part) continue;
    if (p.kind != kind || p.dims != dims || p.encoding != encoding)
      throw Error(ErrorCode::AdapterInvalid, "", "part '" + part + "' has another type or size than expected");
    return p.bytes;
  }
  throw Error(ErrorCode::AdapterInvalid, "", "part '" + part + "' is missing");
}

void AttrReader::fail(const std::string& what) const { throw Error(ErrorCode::AdapterInvalid, where, what); }

uint64_t AttrReader::u64(const std::string& key, uint64_t max) const {
  auto it = attrs.find(key);
  if (it == attrs.end() || !it->is_number_integer()) fail("attribute '" + key + "' is missing or not an integer");
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v > max) fail("attribute '" + key + "' = " + std::to_string(v) + " is out of range");
    return v;
  }
  int64_t v = it->get<int64_t>();
  if (v < 0 || static_cast<uint64_t>(v) > max)
    fail("attribute '" + key + "' = " + std::to_string(v) + " is out of range");
  return static_cast<uint64_t>(v);
}

double AttrReader::f64(const std::string& key) const {
  auto it = attrs.find(key);
  if (it == attrs.end() || !it->is_number()) fail("attribute '" + key + "' is missing or not a number");
  double v = it->get<double>();
  if (!std::isfinite(v)) fail("attribute '" + key + "' is not finite");
  return v;
}

std::string AttrReader::str(const std::string& key) const {
  auto it = attrs.find(key);
  if (it == attrs.end() || !it->is_string()) fail("attribute '" + key + "' is missing or not a string");
  return it->get<std::string>();
}

}  // namespace deltakit
