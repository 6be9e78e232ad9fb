#include "src/pipeline/journal_part.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "src/core/atomic_output.h"
#include "src/core/direct_writer.h"
#include "src/core/eintr.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"

namespace deltakit {

namespace {

constexpr char kMagic[8] = {'D', 'K', 'J', 'P', 'A', 'R', 'T', '1'};
constexpr uint64_t kPrefix = 32;
constexpr uint64_t kHeaderCap = uint64_t{64} << 20;
constexpr uint64_t kChunkCap = uint64_t{64} << 20;  // as the adapter reader accepts
constexpr uint64_t kReadPiece = uint64_t{4} << 20;
constexpr uint64_t kWholeCap = uint64_t{64} << 20;
constexpr uint64_t kDirectAlign = 4096;

// A thread's aligned buffer for whole records, lent record after record and grown to the largest:
// records of every size, each aligned_alloc'ed in the heap the encoders share, fragmented it
// (rank 0 of a 2-rank quant compress of 3.8 GB peaked at 229 MB, against 113 without O_DIRECT).
struct SpareAligned {
  uint8_t* p = nullptr;
  uint64_t bytes = 0;
  ~SpareAligned() { std::free(p); }
};
SpareAligned& spare_aligned() {
  thread_local SpareAligned s;
  return s;
}
void give_spare(uint8_t* p, uint64_t capacity) {  // kept if the largest the thread has
  SpareAligned& spare = spare_aligned();
  if (capacity <= spare.bytes) return std::free(p);
  std::free(spare.p);
  spare.p = p, spare.bytes = capacity;
}

// The file's `size` bytes in an aligned buffer of `capacity` bytes read with O_DIRECT, or null
// where that cannot be done (not allowed, too large, a file system without O_DIRECT, a short
// read): the caller then reads by pieces, and reports what is wrong with the file.
uint8_t* read_whole_direct(const std::string& path, uint64_t size, uint64_t& capacity) {
  if (size == 0 || size > kWholeCap || !direct_io_allowed()) return nullptr;
  const int fd = retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC); });
  if (fd < 0) return nullptr;
  const uint64_t padded = (size + kDirectAlign - 1) / kDirectAlign * kDirectAlign;
  SpareAligned& spare = spare_aligned();
  if (spare.bytes < padded) {
    std::free(spare.p);
    spare.p = static_cast<uint8_t*>(std::aligned_alloc(kDirectAlign, padded));
    spare.bytes = spare.p ? padded : 0;
  }
  uint8_t* buf = std::exchange(spare.p, nullptr);
  capacity = std::exchange(spare.bytes, 0);
  uint64_t done = 0;
  while (buf && done < size) {
    const ssize_t k = ::pread(fd, buf + done, padded - done, static_cast<off_t>(done));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) break;
    done += static_cast<uint64_t>(k);
  }
  ::close(fd);
  if (buf && done < size) give_spare(buf, capacity), buf = nullptr;
  return buf;
}

[[noreturn]] void damaged(const std::string& path, const std::string& what) {
  throw Error(ErrorCode::AdapterInvalid, path, "journal part is damaged: " + what);
}

// Every JSON value as [kind, value]: a number keeps whether it was unsigned, signed or a float
// (a float by its bits: NaN and infinities have no JSON text).
Json typed(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null: return Json::array({"n"});
    case Json::value_t::boolean: return Json::array({"b", v});
    case Json::value_t::string: return Json::array({"s", v});
    case Json::value_t::number_unsigned: return Json::array({"u", v});
    case Json::value_t::number_integer: return Json::array({"i", v});
    case Json::value_t::number_float: return Json::array({"f", std::bit_cast<uint64_t>(v.get<double>())});
    case Json::value_t::array: {
      Json a = Json::array();
      for (const auto& x : v) a.push_back(typed(x));
      return Json::array({"a", std::move(a)});
    }
    case Json::value_t::object: {
      Json o = Json::object();
      for (const auto& [k, x] : v.items()) o[k] = typed(x);
      return Json::array({"o", std::move(o)});
    }
    default: return Json::array({"n"});
  }
}

Json untyped(const Json& t, const std::string& path, int depth = 0) {
  if (depth > 16 || !t.is_array() || t.empty() || !t[0].is_string()) damaged(path, "malformed attribute value");
  const std::string& k = t[0].get_ref<const std::string&>();
  if (k == "n" && t.size() == 1) return nullptr;
  if (t.size() != 2) damaged(path, "malformed attribute value");
  const Json& v = t[1];
  if (k == "b" && v.is_boolean()) return v;
  if (k == "s" && v.is_string()) return v;
  if (k == "u" && v.is_number_unsigned()) return v;
  if (k == "i" && v.is_number_integer()) return Json(v.get<int64_t>());
  if (k == "f" && v.is_number_unsigned()) return Json(std::bit_cast<double>(v.get<uint64_t>()));
  if (k == "a" && v.is_array()) {
    Json a = Json::array();
    for (const auto& x : v) a.push_back(untyped(x, path, depth + 1));
    return a;
  }
  if (k == "o" && v.is_object()) {
    Json o = Json::object();
    for (const auto& [key, x] : v.items()) o[key] = untyped(x, path, depth + 1);
    return o;
  }
  damaged(path, "malformed attribute value");
}

void put_u64(uint8_t* p, uint64_t v) {
  for (int b = 0; b < 8; ++b) p[b] = static_cast<uint8_t>(v >> (8 * b));
}
uint64_t get_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int b = 0; b < 8; ++b) v |= uint64_t{p[b]} << (8 * b);
  return v;
}

std::vector<uint64_t> u64_list(const Json& j, const std::string& path, const char* what) {
  if (!j.is_array()) damaged(path, std::string(what) + " is not a list");
  std::vector<uint64_t> out;
  for (const auto& x : j) {
    if (!x.is_number_unsigned()) damaged(path, std::string(what) + " holds a value that is not a count");
    out.push_back(x.get<uint64_t>());
  }
  return out;
}

}  // namespace

void write_journal_part(const std::string& path, const JournalPart& tensor, const std::vector<FilteredPart>& parts) {
  Json header = Json::object();
  header["name"] = tensor.name;
  header["attrs"] = typed(tensor.attrs);
  header["report"] = tensor.report;
  header["base_fingerprint"] = tensor.base_fingerprint;
  Json list = Json::array();
  uint64_t payload = 0;
  for (const FilteredPart& p : parts) {
    Json sizes = Json::array();
    for (const auto& c : p.chunks) sizes.push_back(uint64_t{c.size()}), payload += c.size();
    list.push_back({{"name", p.name},
                    {"kind", static_cast<unsigned>(p.kind)},
                    {"dims", p.dims},
                    {"chunk", p.chunk},
                    {"encoding", p.encoding},
                    {"zstd_level", p.zstd_level},
                    {"chunks", std::move(sizes)}});
  }
  header["parts"] = std::move(list);
  const std::string text = header.dump();
  Fingerprinter sum;
  sum.add({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  for (const FilteredPart& p : parts)
    for (const auto& c : p.chunks) sum.add(c);
  uint8_t prefix[kPrefix];
  std::memcpy(prefix, kMagic, 8);
  put_u64(prefix + 8, text.size());
  put_u64(prefix + 16, payload);
  put_u64(prefix + 24, sum.value());
  AtomicFile out(path, FileIo::Direct);
  out.write(prefix, sizeof prefix);
  out.write(text.data(), text.size());
  for (const FilteredPart& p : parts)
    for (const auto& c : p.chunks) out.write(c.data(), c.size());
  out.commit(/*sync=*/false);
}

void JournalPartReader::Free::operator()(uint8_t* p) const { give_spare(p, capacity); }

JournalPartReader::JournalPartReader(const std::string& path) : file_(path) {
  const uint64_t size = file_.size();
  if (size < kPrefix) damaged(path, "shorter than its header");
  uint64_t capacity = 0;
  uint8_t* whole = read_whole_direct(path, size, capacity);
  whole_ = std::unique_ptr<uint8_t, Free>(whole, Free{capacity});
  const auto read_at = [&](uint64_t offset, uint64_t n, uint8_t* dst) {
    if (whole_)
      std::memcpy(dst, whole_.get() + offset, n);
    else
      file_.read_into(offset, n, dst);
  };
  uint8_t prefix[kPrefix];
  read_at(0, kPrefix, prefix);
  if (std::memcmp(prefix, kMagic, 8) != 0) damaged(path, "not a deltakit journal part");
  const uint64_t header_bytes = get_u64(prefix + 8), payload = get_u64(prefix + 16), want = get_u64(prefix + 24);
  if (header_bytes > kHeaderCap || payload > size || kPrefix + header_bytes + payload != size)
    damaged(path, "its sizes do not add up to the file's " + std::to_string(size) + " bytes");
  std::string text(header_bytes, '\0');
  read_at(kPrefix, header_bytes, reinterpret_cast<uint8_t*>(text.data()));
  Fingerprinter sum;
  sum.add({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  if (whole_) {
    sum.add({whole_.get() + kPrefix + header_bytes, payload});
  } else {
    buffer_.resize(std::min(payload, kReadPiece));
    for (uint64_t at = 0; at < payload;) {
      const uint64_t n = std::min(kReadPiece, payload - at);
      file_.read_into(kPrefix + header_bytes + at, n, buffer_.data());
      sum.add({buffer_.data(), n});
      at += n;
    }
  }
  if (sum.value() != want) damaged(path, "checksum mismatch");

  const Json h = Json::parse(text, nullptr, false);
  if (!h.is_object() || !h.contains("name") || !h["name"].is_string() || !h.contains("report") ||
      !h["report"].is_string() || !h.contains("base_fingerprint") || !h["base_fingerprint"].is_number_unsigned() ||
      !h.contains("parts") || !h["parts"].is_array() || !h.contains("attrs"))
    damaged(path, "malformed header");
  tensor_.name = h["name"].get<std::string>();
  tensor_.report = h["report"].get<std::string>();
  tensor_.base_fingerprint = h["base_fingerprint"].get<uint64_t>();
  tensor_.attrs = untyped(h["attrs"], path);
  if (!tensor_.attrs.is_object()) damaged(path, "its attributes are not an object");
  uint64_t at = kPrefix + header_bytes;
  for (const Json& p : h["parts"]) {
    if (!p.is_object() || !p.contains("name") || !p["name"].is_string() || !p.contains("kind") ||
        !p["kind"].is_number_unsigned() || p["kind"].get<uint64_t>() > static_cast<unsigned>(PartKind::F32) ||
        !p.contains("encoding") || !p["encoding"].is_string() || !p.contains("zstd_level") ||
        !p["zstd_level"].is_number_integer() || !p.contains("dims") || !p.contains("chunk") || !p.contains("chunks"))
      damaged(path, "malformed part");
    FilteredPart f;
    f.name = p["name"].get<std::string>();
    f.kind = static_cast<PartKind>(p["kind"].get<uint64_t>());
    f.dims = u64_list(p["dims"], path, "a part's shape");
    f.chunk = u64_list(p["chunk"], path, "a part's chunk shape");
    f.encoding = p["encoding"].get<std::string>();
    f.zstd_level = p["zstd_level"].get<int>();
    std::vector<uint64_t> sizes = u64_list(p["chunks"], path, "a part's chunk sizes");
    if (f.name.empty() || f.dims.empty() || f.dims.size() > 32 || f.chunk.size() != f.dims.size())
      damaged(path, "part '" + f.name + "' has a malformed shape");
    for (uint64_t c : f.chunk)
      if (c == 0) damaged(path, "part '" + f.name + "' has a zero chunk dimension");
    // every chunk of the leading dimension, or none (a part never written reads as zeros)
    if (!sizes.empty() && sizes.size() != (f.dims[0] + f.chunk[0] - 1) / f.chunk[0])
      damaged(path, "part '" + f.name + "' has " + std::to_string(sizes.size()) + " chunks for its shape");
    std::vector<uint64_t> offsets;
    for (uint64_t s : sizes) {
      if (s > kChunkCap || s > size - at) damaged(path, "part '" + f.name + "' has a chunk beyond the file");
      offsets.push_back(at);
      at += s;
    }
    layouts_.push_back(std::move(f));
    sizes_.push_back(std::move(sizes));
    offsets_.push_back(std::move(offsets));
  }
  if (at != size) damaged(path, "its chunks do not fill the payload");
}

std::span<const uint8_t> JournalPartReader::chunk(size_t part, size_t c) {
  const uint64_t n = sizes_.at(part).at(c);
  if (whole_) return {whole_.get() + offsets_[part][c], n};
  if (buffer_.size() < n) buffer_.resize(n);
  file_.read_into(offsets_[part][c], n, buffer_.data());
  return {buffer_.data(), n};
}

uint64_t HeldRecord::bytes() const {
  uint64_t n = 0;
  for (const FilteredPart& p : parts)
    for (const auto& c : p.chunks) n += c.size();
  return n;
}

bool journal_part_whole(const std::string& path) {
  try {
    JournalPartReader r(path);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace deltakit
