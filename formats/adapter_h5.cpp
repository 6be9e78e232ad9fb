#include "formats/adapter_h5.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "formats/adapter_preflight.h"
#include "formats/h5_chunks.h"
#include "formats/h5_direct_driver.h"
#include "src/core/checked.h"
#include "src/core/eintr.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"

namespace deltakit {

namespace {

constexpr uint64_t kChunkLimit = 64ull << 20;  // bytes per chunk we accept
constexpr uint64_t kSideFileLimit = 16ull << 20;

hid_t memory_type(PartKind k) {
  switch (k) {
    case PartKind::U8: return H5T_NATIVE_UINT8;
    case PartKind::U16: return H5T_NATIVE_UINT16;
    case PartKind::U32: return H5T_NATIVE_UINT32;
    case PartKind::U64: return H5T_NATIVE_UINT64;
    case PartKind::F32: return H5T_NATIVE_FLOAT;
  }
  return H5T_NATIVE_UINT8;
}

H5Handle group_create_plist() {
  H5Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  H5Pset_obj_track_times(gcpl.get(), false);  // no timestamps: same inputs, same bytes
  // attributes in the group's own header: past HDF5's default of 8 they move to "dense" storage,
  // a fractal heap and a B-tree of their own, about 1.9 KB per tensor (docs/formats.md)
  H5Pset_attr_phase_change(gcpl.get(), 64, 48);
  return gcpl;
}

H5Handle create_group(hid_t parent, const std::string& name) {
  H5Handle gcpl = group_create_plist();
  H5Handle g(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
  if (!g) throw Error(ErrorCode::Io, "", "cannot create HDF5 group '" + name + "' (" + h5_error_detail() + ")");
  return g;
}

[[noreturn]] void invalid(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::AdapterInvalid, where, what);
}

}  // namespace

hid_t h5_part_type(PartKind k) {
  switch (k) {
    case PartKind::U8: return H5T_STD_U8LE;
    case PartKind::U16: return H5T_STD_U16LE;
    case PartKind::U32: return H5T_STD_U32LE;
    case PartKind::U64: return H5T_STD_U64LE;
    case PartKind::F32: return H5T_IEEE_F32LE;
  }
  return H5T_STD_U8LE;
}

// --- writer ----------------------------------------------------------------------------------

AdapterWriter::AdapterWriter(const std::string& path, int zstd_level)
    : AdapterWriter(path, zstd_level, std::filesystem::path(path).parent_path().string()) {}

AdapterWriter::AdapterWriter(const std::string& path, int zstd_level, const std::string& temp_folder)
    : file_(path, FileIo::Direct, temp_folder), level_(zstd_level) {
  h5_setup();
  H5Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
  H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  H5Pset_obj_track_times(fcpl.get(), false);
  H5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  // 1.10 object formats: compact chunk indexes instead of v1 B-tree nodes (docs/formats.md)
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  // the chunks around the page cache, into the temporary AtomicFile made (formats/h5_direct_driver.h)
  if (!h5_use_direct_driver(fapl.get(), file_))
    throw Error(ErrorCode::Io, path, "cannot set up the HDF5 file driver (" + h5_error_detail() + ")");
  h5_ =
      H5Handle(retry_eintr([&] { return H5Fcreate(file_.temp_path().c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get()); }),
               H5Fclose);
  if (!h5_) throw Error(ErrorCode::Io, path, "cannot create the HDF5 file (" + h5_error_detail() + ")");
  tensors_ = create_group(h5_.get(), "tensors");
}

AdapterWriter::~AdapterWriter() {
  tensors_.reset();
  h5_.reset();
}

uint64_t AdapterWriter::write_dataset(hid_t group, const Part& p) {
  return write_dataset(group, filter_part(p, level_, file_.final_path()));
}

uint64_t AdapterWriter::write_dataset(hid_t group, const FilteredPart& p) {
  return write_dataset(group, p, p.chunks.size(),
                       [&](size_t, size_t c) { return std::span<const uint8_t>(p.chunks[c]); });
}

uint64_t AdapterWriter::write_dataset(hid_t group, const FilteredPart& p, size_t chunks, const ChunkSource& chunk_of) {
  const size_t esize = part_kind_size(p.kind);
  std::vector<hsize_t> dims(p.dims.begin(), p.dims.end()), chunk(p.chunk.begin(), p.chunk.end());
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  unsigned level = static_cast<unsigned>(p.zstd_level);
  H5Pset_obj_track_times(dcpl.get(), false);
  // a header sized to its messages (HDF5 reserves room for attributes a part rarely has)
  if (p.encoding.empty()) H5Pset_dset_no_attrs_hint(dcpl.get(), true);
  // multi-byte elements are byte-shuffled first (HDF5's built-in filter): a delta's exponent and
  // low mantissa bytes each form runs zstd codes smaller (a raw adapter of fp32 deltas: -21%);
  // filter_part ran this pipeline already, the dataset declares it for readers
  if (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
      (esize > 1 && H5Pset_shuffle(dcpl.get()) < 0) ||
      H5Pset_filter(dcpl.get(), kZstdFilterId, H5Z_FLAG_MANDATORY, 1, &level) < 0 || H5Pset_fletcher32(dcpl.get()) < 0)
    throw Error(ErrorCode::Io, file_.final_path(),
                "cannot set up dataset '" + p.name + "' (" + h5_error_detail() + ")");
  H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  H5Handle ds(
      H5Dcreate2(group, p.name.c_str(), h5_part_type(p.kind), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
      H5Dclose);
  if (!ds)
    throw Error(ErrorCode::Io, file_.final_path(),
                "cannot create dataset '" + p.name + "' (" + h5_error_detail() + ")");
  std::vector<hsize_t> offset(dims.size(), 0);
  for (size_t c = 0; c < chunks; ++c) {
    offset[0] = c * chunk[0];
    const std::span<const uint8_t> bytes = chunk_of(0, c);
    if (H5Dwrite_chunk(ds.get(), H5P_DEFAULT, 0, offset.data(), bytes.size(), bytes.data()) < 0)
      throw Error(ErrorCode::Io, file_.final_path(),
                  "cannot write dataset '" + p.name + "' (" + h5_error_detail() + ")");
  }
  if (!p.encoding.empty()) h5_write_attr(ds.get(), "encoding", p.encoding);
  return H5Dget_storage_size(ds.get());
}

uint64_t AdapterWriter::add_tensor(const std::string& name, const Json& attrs, const std::vector<Part>& parts) {
  std::vector<FilteredPart> filtered;
  for (const auto& p : parts) filtered.push_back(filter_part(p, level_, file_.final_path()));
  return add_tensor(name, attrs, filtered);
}

uint64_t AdapterWriter::add_tensor(const std::string& name, const Json& attrs, const std::vector<FilteredPart>& parts) {
  std::vector<size_t> counts;
  for (const auto& p : parts) counts.push_back(p.chunks.size());
  return add_tensor(name, attrs, parts, counts,
                    [&](size_t p, size_t c) { return std::span<const uint8_t>(parts[p].chunks[c]); });
}

uint64_t AdapterWriter::add_tensor(const std::string& name, const Json& attrs, const std::vector<FilteredPart>& layouts,
                                   const std::vector<size_t>& chunk_counts, const ChunkSource& chunk) {
  if (name.empty()) throw Error(ErrorCode::Usage, file_.final_path(), "a tensor with an empty name cannot be stored");
  if (chunk_counts.size() != layouts.size())
    throw Error(ErrorCode::Usage, file_.final_path(), "tensor '" + name + "': a chunk count per part is needed");
  H5Handle g = create_group(tensors_.get(), h5_escape_name(name));
  h5_write_attr(g.get(), "name", name);
  for (const auto& [k, v] : attrs.items())
    if (k != "name") h5_write_attr(g.get(), k, v);
  uint64_t stored = 0;
  for (size_t i = 0; i < layouts.size(); ++i)
    stored += write_dataset(g.get(), layouts[i], chunk_counts[i], [&](size_t, size_t c) { return chunk(i, c); });
  return stored;
}

uint64_t AdapterWriter::copy_tensor(const AdapterReader& from, const std::string& name) {
  return copy_tensor(from, name, from.tensor(name).attrs, {});
}

uint64_t AdapterWriter::copy_tensor(const AdapterReader& from, const std::string& name, const Json& attrs,
                                    const std::vector<Part>& replaced) {
  // By hand rather than H5Ocopy, which crashes in HDF5 1.10 copying variable-length string
  // attributes held in dense storage.
  const auto& t = from.tensor(name);
  const std::string& out = file_.final_path();
  auto fail = [&](const std::string& what) {
    throw Error(ErrorCode::Io, out,
                "cannot copy tensor '" + name + "' from " + from.path() + ": " + what + " (" + h5_error_detail() + ")");
  };
  H5Handle g = create_group(tensors_.get(), t.group);
  h5_write_attr(g.get(), "name", name);
  for (const auto& [k, v] : attrs.items())
    if (k != "name") h5_write_attr(g.get(), k, v);
  uint64_t stored = 0;
  std::vector<uint8_t> chunk;
  for (const auto& part : t.parts) {
    auto fresh = std::find_if(replaced.begin(), replaced.end(), [&](const Part& p) { return p.name == part; });
    if (fresh != replaced.end()) {
      stored += write_dataset(g.get(), *fresh);
      continue;
    }
    H5Handle src = from.open_part(t, part);
    if (!src) fail("cannot open dataset '" + part + "'");
    H5Handle dcpl(H5Dget_create_plist(src.get()), H5Pclose), type(H5Dget_type(src.get()), H5Tclose),
        space(H5Dget_space(src.get()), H5Sclose);
    if (dcpl) H5Pset_obj_track_times(dcpl.get(), false);  // not carried over by H5Dget_create_plist
    if (dcpl && H5Aexists(src.get(), "encoding") == 0) H5Pset_dset_no_attrs_hint(dcpl.get(), true);  // as written
    H5Handle dst(H5Dcreate2(g.get(), part.c_str(), type.get(), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                 H5Dclose);
    if (!dcpl || !type || !space || !dst) fail("cannot create dataset '" + part + "'");
    hsize_t nchunks = 0;
    if (H5Dget_num_chunks(src.get(), space.get(), &nchunks) < 0) fail("cannot count the chunks of '" + part + "'");
    for (hsize_t c = 0; c < nchunks; ++c) {
      hsize_t offset[H5S_MAX_RANK] = {};
      unsigned mask = 0;
      haddr_t addr = 0;
      hsize_t size = 0;
      if (H5Dget_chunk_info(src.get(), space.get(), c, offset, &mask, &addr, &size) < 0 || size > kChunkLimit)
        fail("bad chunk " + std::to_string(c) + " in '" + part + "'");
      chunk.resize(size);
      uint32_t filters = 0;
      if (H5Dread_chunk(src.get(), H5P_DEFAULT, offset, &filters, chunk.data()) < 0 ||
          H5Dwrite_chunk(dst.get(), H5P_DEFAULT, filters, offset, size, chunk.data()) < 0)
        fail("cannot move chunk " + std::to_string(c) + " of '" + part + "'");
    }
    Json enc = h5_read_attrs(src.get(), from.where(name));
    if (enc.contains("encoding")) h5_write_attr(dst.get(), "encoding", enc["encoding"]);
    stored += H5Dget_storage_size(dst.get());
  }
  return stored;
}

void AdapterWriter::commit(const Json& root_attrs, const std::map<std::string, std::string>& side_files) {
  for (const auto& [k, v] : root_attrs.items()) h5_write_attr(h5_.get(), k, v);
  h5_write_attr(h5_.get(), "format", kAdapterFormat);
  h5_write_attr(h5_.get(), "format_version", static_cast<int64_t>(kAdapterVersion));
  if (!side_files.empty()) {
    H5Handle sg = create_group(h5_.get(), "side_files");
    for (const auto& [name, text] : side_files) {
      Part p{h5_escape_name(name), PartKind::U8, {text.size()}, {text.begin(), text.end()}, ""};
      write_dataset(sg.get(), p);
      H5Handle ds(H5Dopen2(sg.get(), p.name.c_str(), H5P_DEFAULT), H5Dclose);
      h5_write_attr(ds.get(), "name", name);
    }
  }
  tensors_.reset();
  if (H5Fflush(h5_.get(), H5F_SCOPE_GLOBAL) < 0)
    throw Error(ErrorCode::Io, file_.final_path(), "cannot flush the HDF5 file (" + h5_error_detail() + ")");
  if (!h5_.close())
    throw Error(ErrorCode::Io, file_.final_path(), "cannot close the HDF5 file (" + h5_error_detail() + ")");
  file_.commit();
}

// --- reader ----------------------------------------------------------------------------------

namespace {

// What a dataset's read takes from the file under the HDF5 lock: its bytes already (HDF5's own
// pipeline read them), or its stored chunks back to back, unfiltered by `finish` after the lock
// is let go (our code: apply's workers decode side by side, and faster than HDF5's generic
// unshuffle and Fletcher32).
struct DatasetRead {
  std::vector<uint8_t> out;
  std::vector<uint8_t> raw;
  std::vector<size_t> raw_ends;  // chunk c's stored bytes end at raw_ends[c]
  uint64_t chunk_bytes = 0;
  size_t esize = 1;
  std::string where, what;

  std::vector<uint8_t> finish() && {
    for (size_t c = 0, from = 0; c < raw_ends.size(); from = raw_ends[c++]) {
      const uint64_t at = c * chunk_bytes, keep = std::min<uint64_t>(chunk_bytes, out.size() - at);
      if (!unfilter_chunk(raw.data() + from, raw_ends[c] - from, chunk_bytes, esize, out.data() + at, keep))
        invalid(where, what + " is damaged: checksum or decompression failed (chunk " + std::to_string(c) + ")");
    }
    return std::move(out);
  }
};

// The `chunks` stored chunks into r (its chunk_bytes set), where every chunk is a run of whole
// leading-dim rows (as we write them) stored with every filter; false (nothing taken) where one
// is not, for HDF5's own read.
bool read_raw_chunks(hid_t ds, const std::vector<hsize_t>& chunk, const std::vector<uint64_t>& dims, uint64_t chunks,
                     DatasetRead& r) {
  for (size_t d = 1; d < dims.size(); ++d)
    if (chunk[d] != dims[d]) return false;
  std::vector<hsize_t> offset(dims.size(), 0);
  std::vector<hsize_t> sizes(chunks);
  // a stored chunk larger than any zstd frame of it (plus the checksum) is left to HDF5, which
  // reads one chunk at a time: the raw chunks held at once stay about the dataset's own size
  const uint64_t most = r.chunk_bytes + r.chunk_bytes / 64 + 4096;
  uint64_t total = 0;
  for (uint64_t c = 0; c < chunks; ++c) {
    offset[0] = c * chunk[0];
    if (H5Dget_chunk_storage_size(ds, offset.data(), &sizes[c]) < 0 || sizes[c] > most) return false;
    total += sizes[c];
  }
  r.raw.resize(total);
  r.raw_ends.resize(chunks);
  for (uint64_t c = 0, at = 0; c < chunks; ++c) {
    offset[0] = c * chunk[0];
    uint32_t skipped = 0;
    if (H5Dread_chunk(ds, H5P_DEFAULT, offset.data(), &skipped, r.raw.data() + at) < 0 || skipped != 0) {
      r.raw.clear(), r.raw_ends.clear();
      return false;
    }
    at += sizes[c];
    r.raw_ends[c] = at;
  }
  return true;
}

// Every property of a dataset checked against what it must hold, then its bytes (or its stored
// chunks, for DatasetRead::finish).
DatasetRead read_dataset(hid_t ds, const std::string& where, const std::string& part, PartKind kind,
                         const std::vector<uint64_t>& dims, const std::string& encoding) {
  const std::string what = "dataset '" + part + "'";
  H5Handle type(H5Dget_type(ds), H5Tclose);
  if (!type || H5Tequal(type.get(), h5_part_type(kind)) <= 0)
    invalid(where, what + " is not " + part_kind_name(kind) + " little-endian");
  H5Handle space(H5Dget_space(ds), H5Sclose);
  if (!space || H5Sget_simple_extent_type(space.get()) != H5S_SIMPLE) invalid(where, what + " is not a simple array");
  const int rank = H5Sget_simple_extent_ndims(space.get());
  std::vector<uint64_t> want = dims.empty() ? std::vector<uint64_t>{1} : dims;
  if (rank != static_cast<int>(want.size()))
    invalid(where, what + " has rank " + std::to_string(rank) + ", expected " + std::to_string(want.size()));
  std::vector<hsize_t> got(rank);
  H5Sget_simple_extent_dims(space.get(), got.data(), nullptr);
  for (int d = 0; d < rank; ++d)
    if (got[d] != want[d])
      invalid(where, what + " has " + std::to_string(got[d]) + " elements in dim " + std::to_string(d) + ", expected " +
                         std::to_string(want[d]) + " from the tensor's shape and attributes");
  H5Handle dcpl(H5Dget_create_plist(ds), H5Pclose);
  if (!dcpl) invalid(where, what + ": cannot read its creation properties");
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED)
    invalid(where, what + " is not chunked (only our chunked layout is read)");
  if (H5Pget_external_count(dcpl.get()) != 0) invalid(where, what + " uses external storage (refused)");
  std::vector<hsize_t> chunk(rank);
  if (H5Pget_chunk(dcpl.get(), rank, chunk.data()) != rank) invalid(where, what + " has a malformed chunk shape");
  uint64_t chunk_bytes = part_kind_size(kind);
  for (hsize_t c : chunk) {
    if (c == 0 || c > kChunkLimit) invalid(where, what + " has a malformed chunk shape");
    chunk_bytes *= c;
    if (chunk_bytes > kChunkLimit) invalid(where, what + " has chunks over 64 MiB");
  }
  // [shuffle (multi-byte elements only)] + zstd + fletcher32, nothing else
  const int nfilters = H5Pget_nfilters(dcpl.get());
  const bool shuffled = part_kind_size(kind) > 1 && nfilters == 3;
  if (nfilters != 2 + shuffled)
    invalid(where, what + " does not have the [shuffle +] zstd + fletcher32 filter pipeline");
  unsigned flags = 0, cd[4] = {0, 0, 0, 0};
  size_t ncd = 4;
  if (shuffled && H5Pget_filter2(dcpl.get(), 0, &flags, &ncd, cd, 0, nullptr, nullptr) != H5Z_FILTER_SHUFFLE)
    invalid(where, what + ": the first of three filters is not shuffle");
  ncd = 4;
  if (H5Pget_filter2(dcpl.get(), shuffled, &flags, &ncd, cd, 0, nullptr, nullptr) != kZstdFilterId || ncd < 2 ||
      cd[1] != chunk_bytes)
    invalid(where, what + ": the compression filter is not zstd with this chunk's size");
  ncd = 4;
  if (H5Pget_filter2(dcpl.get(), 1 + shuffled, &flags, &ncd, cd, 0, nullptr, nullptr) != H5Z_FILTER_FLETCHER32)
    invalid(where, what + ": the last filter is not fletcher32");
  Json a = h5_read_attrs(ds, where + " " + what);
  std::string enc = a.contains("encoding") && a["encoding"].is_string() ? a["encoding"].get<std::string>() : "";
  if (enc != encoding) invalid(where, what + " has encoding \"" + enc + "\", expected \"" + encoding + "\"");
  uint64_t count = 1;
  for (uint64_t d : want) count *= d;
  // a chunk never written reads as the fill value (zeros): a dataset must hold every chunk
  // (H5Dget_space_status cannot tell: compressed chunks always look partly allocated)
  uint64_t chunks = 1;
  for (int d = 0; d < rank; ++d) chunks *= (want[d] + chunk[d] - 1) / chunk[d];
  hsize_t stored = 0;
  if (count && (H5Dget_num_chunks(ds, space.get(), &stored) < 0 || stored != chunks))
    invalid(where, what + " stores " + std::to_string(stored) + " of its " + std::to_string(chunks) + " chunks");
  DatasetRead r;
  r.where = where, r.what = what;
  r.chunk_bytes = chunk_bytes, r.esize = part_kind_size(kind);
  r.out.resize(count * r.esize);
  if (count && !read_raw_chunks(ds, chunk, want, chunks, r) &&
      H5Dread(ds, memory_type(kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, r.out.data()) < 0)
    invalid(where, what + " is damaged: checksum or decompression failed (" + h5_error_detail() + ")");
  return r;
}

// The root's attributes: each known key with its type, nothing unknown (a newer writer changes
// format_version), and the ones apply relies on present.
void check_root_attrs(const Json& root, const std::string& path) {
  static const std::map<std::string, bool> known = {
      // key -> is a string (else an unsigned integer)
      {"format", true},        {"format_version", false},  {"recipe", true}, {"rules", true},
      {"seed", false},         {"deltakit_version", true}, {"base", true},   {"finetuned", true},
      {"tensor_count", false}, {"base_fingerprint", true}, {"report", true}, {"distillation", true}};
  for (const auto& [key, value] : root.items()) {
    auto it = known.find(key);
    if (it == known.end()) invalid(path, "unknown root attribute '" + key + "'");
    const bool natural = value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
    if (it->second ? !value.is_string() : !natural)
      invalid(path, "root attribute '" + key + "' is not " + (it->second ? "a string" : "an unsigned integer"));
  }
  for (const char* key : {"recipe", "tensor_count", "base_fingerprint"})
    if (!root.contains(key)) invalid(path, std::string("root attribute '") + key + "' is missing");
}

// A child object of `parent` that must be of `type` (links were checked to be hard already).
H5Handle open_child(hid_t parent, const std::string& name, H5I_type_t type, const std::string& where,
                    const std::string& what) {
  H5Handle o(H5Oopen(parent, name.c_str(), H5P_DEFAULT), H5Oclose);
  if (!o || H5Iget_type(o.get()) != type) invalid(where, what);
  return o;
}

}  // namespace

AdapterReader::AdapterReader(const std::string& path, Walk walk) : path_(path) {
  h5_setup();
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw_errno(path, "cannot open the adapter");
  if (!S_ISREG(st.st_mode)) invalid(path, "the adapter is not a regular file");
  if (walk == kIsolated) preflight_adapter(path);
  file_size_ = static_cast<uint64_t>(st.st_size);
  htri_t is = H5Fis_hdf5(path.c_str());
  H5Eclear2(H5E_DEFAULT);
  if (is <= 0) invalid(path, "not a deltakit adapter (not an HDF5 file)");
  h5_ = H5Handle(retry_eintr([&] { return H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }), H5Fclose);
  if (!h5_) invalid(path, "cannot open the HDF5 file; it is damaged or truncated (" + h5_error_detail() + ")");
  root_ = h5_read_attrs(h5_.get(), path);
  if (!root_.contains("format") || root_["format"] != kAdapterFormat)
    invalid(path, "not a deltakit adapter (root attribute 'format' is not \"deltakit-adapter\")");
  if (!root_.contains("format_version") || !root_["format_version"].is_number_integer() ||
      root_["format_version"].get<int64_t>() != kAdapterVersion)
    invalid(path, "adapter format_version " +
                      (root_.contains("format_version") ? root_["format_version"].dump() : "(none)") +
                      " is not supported (this build reads " + std::to_string(kAdapterVersion) + ")");
  check_root_attrs(root_, path);
  bool have_tensors = false, have_side = false;
  for (const auto& link : h5_hard_links(h5_.get(), path)) {
    if (link == "tensors")
      have_tensors = true;
    else if (link == "side_files")
      have_side = true;
    else
      invalid(path, "unexpected object '/" + link + "' at the root");
  }
  if (!have_tensors) invalid(path, "the group /tensors is missing");
  H5Handle tg(H5Gopen2(h5_.get(), "tensors", H5P_DEFAULT), H5Gclose);
  if (!tg) invalid(path, "/tensors is not a group");
  for (const auto& link : h5_hard_links(tg.get(), path + ": /tensors")) {
    const std::string where = path + ": /tensors/" + link;
    H5Handle g = open_child(tg.get(), link, H5I_GROUP, where, "is not a group");
    Tensor t;
    t.group = link;
    t.attrs = h5_read_attrs(g.get(), where);
    AttrReader a{t.attrs, where};
    std::string name = a.str("name");
    if (h5_escape_name(name) != link)
      invalid(where, "its 'name' attribute \"" + name + "\" does not match the group name");
    a.str("codec");
    if (!dtype_from_name(a.str("dtype"))) invalid(where, "attribute 'dtype' is not a safetensors dtype");
    const Json& shape = t.attrs.contains("shape") ? t.attrs["shape"] : Json();
    if (!shape.is_array() || shape.size() > 16) invalid(where, "attribute 'shape' is not an array of up to 16 dims");
    uint64_t numel = 1;
    for (const auto& d : shape) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        invalid(where, "attribute 'shape' holds a negative or non-integer dim");
      auto m = checked_mul(numel, d.get<uint64_t>());
      if (!m || *m > (uint64_t{1} << 48)) invalid(where, "attribute 'shape' describes more than 2^48 elements");
      numel = *m;
    }
    if (!t.attrs.contains("base_fingerprint") || !t.attrs["base_fingerprint"].is_number_unsigned())
      invalid(where, "attribute 'base_fingerprint' is missing or not a uint64");
    if (t.attrs.contains("rel_error")) a.f64("rel_error");
    for (const auto& part : h5_hard_links(g.get(), where)) {
      open_child(g.get(), part, H5I_DATASET, where, "'" + part + "' is not a dataset");
      t.parts.push_back(part);
    }
    if (tensors_.count(name)) invalid(where, "tensor '" + name + "' stored twice");
    names_.push_back(name);
    tensors_.emplace(name, std::move(t));
  }
  if (root_["tensor_count"].get<int64_t>() != static_cast<int64_t>(names_.size()))
    invalid(path, "root attribute 'tensor_count' says " + root_["tensor_count"].dump() + " but /tensors holds " +
                      std::to_string(names_.size()));
  if (have_side) {
    H5Handle sg(H5Gopen2(h5_.get(), "side_files", H5P_DEFAULT), H5Gclose);
    if (!sg) invalid(path, "/side_files is not a group");
    for (const auto& link : h5_hard_links(sg.get(), path + ": /side_files")) {
      const std::string where = path + ": /side_files/" + link;
      H5Handle ds = open_child(sg.get(), link, H5I_DATASET, where, "is not a dataset");
      Json a = h5_read_attrs(ds.get(), where);
      if (!a.contains("name") || !a["name"].is_string() || h5_escape_name(a["name"].get<std::string>()) != link)
        invalid(where, "its 'name' attribute is missing or does not match");
      H5Handle space(H5Dget_space(ds.get()), H5Sclose);
      hssize_t n = space ? H5Sget_simple_extent_npoints(space.get()) : -1;
      if (n < 0 || static_cast<uint64_t>(n) > kSideFileLimit) invalid(where, "is not a byte array of at most 16 MB");
      auto bytes = read_dataset(ds.get(), where, link, PartKind::U8, {static_cast<uint64_t>(n)}, "").finish();
      side_files_[a["name"].get<std::string>()] = std::string(bytes.begin(), bytes.end());
    }
  }
}

const AdapterReader::Tensor& AdapterReader::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) invalid(path_, "no tensor '" + name + "' in the adapter");
  return it->second;
}

const Json& AdapterReader::attrs(const std::string& name) const { return tensor(name).attrs; }

DType AdapterReader::dtype(const std::string& name) const {
  return *dtype_from_name(attrs(name)["dtype"].get<std::string>());
}

std::vector<uint64_t> AdapterReader::shape(const std::string& name) const {
  return attrs(name)["shape"].get<std::vector<uint64_t>>();
}

uint64_t AdapterReader::base_fingerprint(const std::string& name) const {
  return attrs(name)["base_fingerprint"].get<uint64_t>();
}

std::vector<uint8_t> AdapterReader::read_part(const std::string& name, const std::string& part, PartKind kind,
                                              const std::vector<uint64_t>& dims, const std::string& encoding) const {
  DatasetRead read;
  {
    std::lock_guard<std::recursive_mutex> lock(h5_lock());  // apply's workers read at once
    const Tensor& t = tensor(name);
    const std::string where = this->where(name);
    if (std::find(t.parts.begin(), t.parts.end(), part) == t.parts.end())
      invalid(where, "dataset '" + part + "' is missing");
    H5Handle ds = open_part(t, part);
    if (!ds) invalid(where, "cannot open dataset '" + part + "' (" + h5_error_detail() + ")");
    read = read_dataset(ds.get(), where, part, kind, dims, encoding);
  }
  return std::move(read).finish();
}

H5Handle AdapterReader::open_part(const Tensor& t, const std::string& part) const {
  H5Handle g(H5Gopen2(h5_.get(), ("tensors/" + t.group).c_str(), H5P_DEFAULT), H5Gclose);
  return H5Handle(g ? H5Dopen2(g.get(), part.c_str(), H5P_DEFAULT) : -1, H5Dclose);
}

void AdapterReader::walk_every_dataset() const {
  for (const auto& [name, t] : tensors_) {
    for (const auto& part : t.parts) {
      H5Handle ds = open_part(t, part);
      if (!ds) continue;
      H5Handle type(H5Dget_type(ds.get()), H5Tclose), space(H5Dget_space(ds.get()), H5Sclose);
      H5Handle dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
      if (!type || !space || !dcpl) continue;
      (void)H5Pget_layout(dcpl.get());
      (void)H5Pget_nfilters(dcpl.get());
      hsize_t chunks = 0;  // the chunk index: what a read looks chunks up in
      if (H5Dget_num_chunks(ds.get(), space.get(), &chunks) < 0) continue;
      for (hsize_t c = 0; c < chunks && c < (hsize_t{1} << 20); ++c) {
        hsize_t offset[32] = {};
        unsigned mask = 0;
        haddr_t addr = 0;
        hsize_t size = 0;
        if (H5Sget_simple_extent_ndims(space.get()) > 32 ||
            H5Dget_chunk_info(ds.get(), space.get(), c, offset, &mask, &addr, &size) < 0)
          break;
      }
      (void)h5_read_attrs(ds.get(), path_);
    }
  }
}

uint64_t AdapterReader::stored_bytes(const std::string& name) const {
  const Tensor& t = tensor(name);
  uint64_t total = 0;
  for (const auto& part : t.parts)
    if (H5Handle ds = open_part(t, part)) total += H5Dget_storage_size(ds.get());
  return total;
}

bool AdapterTensorSource::has(const std::string& part) const {
  const auto& parts = r_.tensor(name_).parts;
  return std::find(parts.begin(), parts.end(), part) != parts.end();
}

std::vector<std::string> AdapterTensorSource::names() const { return r_.tensor(name_).parts; }

std::vector<uint8_t> AdapterTensorSource::read(const std::string& part, PartKind kind,
                                               const std::vector<uint64_t>& dims, const std::string& encoding) const {
  return r_.read_part(name_, part, kind, dims, encoding);
}

bool is_adapter_file(const std::string& path) {
  h5_setup();
  struct stat st;  // HDF5 would block on a FIFO
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  try {
    preflight_adapter(path);
  } catch (const Error&) {
    return true;  // HDF5 cannot walk it: the reader's open reports that
  }
  H5Handle f(retry_eintr([&] { return H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT); }), H5Fclose);
  if (!f) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  return H5Aexists(f.get(), "format") > 0;
}

}  // namespace deltakit
