// What a codec produces and an adapter stores: typed payload arrays ("parts") plus attributes.
// Decoding asks a PartSource for each part with the exact element kind and dimensions it
// expects, so an adapter reader can refuse a dataset of any other size before reading a byte.
// Neutral ground between src/codec (which makes and reads parts) and formats/ (which stores
// them): neither includes the other.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

namespace deltakit {

using Json = nlohmann::ordered_json;

// Element types of stored arrays (HDF5: U8LE, U16LE, U32LE, U64LE, IEEE F32LE).
enum class PartKind : uint8_t { U8, U16, U32, U64, F32 };
size_t part_kind_size(PartKind k);
const char* part_kind_name(PartKind k);

struct Part {
  std::string name;  // "<codec>.<what>", e.g. "bitdelta.signs"
  PartKind kind = PartKind::U8;
  std::vector<uint64_t> dims;  // row-major; product = element count
  std::vector<uint8_t> bytes;  // little-endian elements
  std::string encoding;        // U16 values: "bfloat16" or "float16"; "" otherwise
  uint64_t count() const;
};

struct Encoded {
  Json attrs = Json::object();  // codec attributes, "<codec>.<key>"
  std::vector<Part> parts;
  // ‖δ − δ̂‖² and ‖δ‖² over the whole tensor, where the encoder could measure them on the way
  // (a value coder over a dense stream: src/codec/error_norms.h), so nobody decodes it again
  bool error_measured = false;
  double err_sq = 0, delta_sq = 0;
  // whether the coder wrote δ̂ into the buffer its caller offered (ValueStream::recon_out)
  bool recon_written = false;
  void add(Part p) { parts.push_back(std::move(p)); }
};

// Where decoding reads parts from (an adapter file, or an Encoded in memory).
class PartSource {
 public:
  virtual ~PartSource() = default;
  virtual bool has(const std::string& part) const = 0;
  virtual std::vector<std::string> names() const = 0;  // every part stored
  // The part's bytes; throws Error(AdapterInvalid) unless it exists with exactly this kind,
  // dims and encoding.
  virtual std::vector<uint8_t> read(const std::string& part, PartKind kind, const std::vector<uint64_t>& dims,
                                    const std::string& encoding) const = 0;
};

class EncodedSource : public PartSource {
 public:
  explicit EncodedSource(const Encoded& e) : e_(e) {}
  bool has(const std::string& part) const override;
  std::vector<std::string> names() const override;
  std::vector<uint8_t> read(const std::string& part, PartKind kind, const std::vector<uint64_t>& dims,
                            const std::string& encoding) const override;

 private:
  const Encoded& e_;
};

// Typed, range-checked attribute access for decoders; `where` names the tensor in errors.
struct AttrReader {
  const Json& attrs;
  std::string where;  // "file: tensor 'x'"
  uint64_t u64(const std::string& key, uint64_t max) const;
  double f64(const std::string& key) const;  // finite
  std::string str(const std::string& key) const;
  [[noreturn]] void fail(const std::string& what) const;
};

template <class T>
std::vector<uint8_t> bytes_of(std::span<const T> v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return {p, p + v.size_bytes()};
}
template <class T>
std::vector<T> elements_of(std::span<const uint8_t> b) {
  std::vector<T> out(b.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), b.data(), out.size() * sizeof(T));
  return out;
}

}  // namespace deltakit
