#include "formats/h5_direct_driver.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <vector>

#include "formats/h5_support.h"
#include "src/core/atomic_output.h"

namespace deltakit {

namespace {

struct DriverInfo {
  AtomicFile* out;
};

struct Kept {
  haddr_t addr;
  std::vector<uint8_t> bytes;
};

struct DirectFile {
  H5FD_t pub;  // first: HDF5 holds the file as an H5FD_t*
  AtomicFile* out = nullptr;
  haddr_t eoa = 0, eof = 0;
  haddr_t streamed = 0;              // [0, streamed) went to the stream
  std::vector<Kept> kept;            // in write order: laid over the file in that order
  std::map<haddr_t, haddr_t> cover;  // the kept writes' ranges, merged: start -> end

  bool overlaps_kept(haddr_t a, haddr_t end) const {
    auto it = cover.upper_bound(a);
    if (it != cover.begin() && std::prev(it)->second > a) return true;
    return it != cover.end() && it->first < end;
  }
  void keep(haddr_t a, const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    kept.push_back({a, std::vector<uint8_t>(b, b + n)});
    haddr_t lo = a, hi = a + n;
    auto it = cover.upper_bound(lo);
    if (it != cover.begin() && std::prev(it)->second >= lo) --it;
    while (it != cover.end() && it->first <= hi) {
      lo = std::min(lo, it->first), hi = std::max(hi, it->second);
      it = cover.erase(it);
    }
    cover.emplace(lo, hi);
  }
};

DirectFile* as_file(H5FD_t* f) { return reinterpret_cast<DirectFile*>(f); }
const DirectFile* as_file(const H5FD_t* f) { return reinterpret_cast<const DirectFile*>(f); }

herr_t failed(hid_t minor, const char* what) {
  H5Epush2(H5E_DEFAULT, __FILE__, "deltakit direct driver", __LINE__, H5E_ERR_CLS, H5E_VFL, minor, "%s", what);
  return -1;
}

H5FD_t* open_file(const char*, unsigned, hid_t fapl, haddr_t) {
  const auto* info = static_cast<const DriverInfo*>(H5Pget_driver_info(fapl));
  if (!info || !info->out) {
    failed(H5E_CANTOPENFILE, "no output file given to the direct driver");
    return nullptr;
  }
  try {
    auto* f = new DirectFile{};
    f->out = info->out;
    return &f->pub;
  } catch (const std::exception& e) {
    failed(H5E_CANTOPENFILE, e.what());
    return nullptr;
  }
}

// The file's bytes made final: the stream to the end, then the kept writes over it in order.
herr_t close_file(H5FD_t* file) {
  DirectFile* f = as_file(file);
  herr_t rc = 0;
  try {
    if (f->streamed < f->eof) f->out->write_zeros(f->eof - f->streamed), f->streamed = f->eof;
    for (const Kept& k : f->kept)
      if (k.addr < f->eof) f->out->write_at(k.addr, k.bytes.data(), std::min<haddr_t>(k.bytes.size(), f->eof - k.addr));
    if (f->streamed > f->eof) f->out->resize(f->eof);
  } catch (const std::exception& e) {
    rc = failed(H5E_CLOSEERROR, e.what());
  }
  delete f;
  return rc;
}

int compare(const H5FD_t* a, const H5FD_t* b) {
  const AtomicFile *x = as_file(a)->out, *y = as_file(b)->out;
  return x < y ? -1 : x > y ? 1 : 0;
}

herr_t query(const H5FD_t*, unsigned long* flags) {
  // as the POSIX driver allocates (so the bytes are the same), less its POSIX-handle and SWMR claims
  *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
           H5FD_FEAT_AGGREGATE_SMALLDATA | H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
  return 0;
}

haddr_t get_eoa(const H5FD_t* f, H5FD_mem_t) { return as_file(f)->eoa; }
herr_t set_eoa(H5FD_t* f, H5FD_mem_t, haddr_t addr) {
  as_file(f)->eoa = addr;
  return 0;
}
haddr_t get_eof(const H5FD_t* f, H5FD_mem_t) { return as_file(f)->eof; }

herr_t read(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, void* buf) {
  DirectFile* f = as_file(file);
  try {
    auto* out = static_cast<uint8_t*>(buf);
    std::memset(out, 0, size);  // never written: zeros, as a file's hole reads
    if (addr < f->streamed) f->out->read_back(addr, out, std::min<haddr_t>(size, f->streamed - addr));
    const haddr_t end = addr + size;
    for (const Kept& k : f->kept) {
      const haddr_t lo = std::max(addr, k.addr), hi = std::min<haddr_t>(end, k.addr + k.bytes.size());
      if (lo < hi) std::memcpy(out + (lo - addr), k.bytes.data() + (lo - k.addr), hi - lo);
    }
    return 0;
  } catch (const std::exception& e) {
    return failed(H5E_READERROR, e.what());
  }
}

herr_t write(H5FD_t* file, H5FD_mem_t type, hid_t, haddr_t addr, size_t size, const void* buf) {
  DirectFile* f = as_file(file);
  try {
    const haddr_t end = addr + size;
    // raw data at or past the stream's end, over no kept write (which would otherwise be laid
    // over it later, out of order): streamed; the rest kept
    if (type == H5FD_MEM_DRAW && addr >= f->streamed && !f->overlaps_kept(addr, end)) {
      if (addr > f->streamed) f->out->write_zeros(addr - f->streamed);
      f->out->write(buf, size);
      f->streamed = end;
    } else {
      f->keep(addr, buf, size);
    }
    f->eof = std::max(f->eof, end);
    return 0;
  } catch (const std::exception& e) {
    return failed(H5E_WRITEERROR, e.what());
  }
}

herr_t truncate(H5FD_t* file, hid_t, hbool_t) {
  DirectFile* f = as_file(file);
  f->eof = f->eoa;  // made so at close
  return 0;
}

H5FD_class_t make_class() {
  H5FD_class_t c{};
  c.name = "deltakit_direct";
  c.maxaddr = (haddr_t{1} << 62) - 1;
  c.fc_degree = H5F_CLOSE_WEAK;
  c.fapl_size = sizeof(DriverInfo);
  c.open = open_file;
  c.close = close_file;
  c.cmp = compare;
  c.query = query;
  c.get_eoa = get_eoa;
  c.set_eoa = set_eoa;
  c.get_eof = get_eof;
  c.read = read;
  c.write = write;
  c.truncate = truncate;
  const H5FD_mem_t dichotomy[H5FD_MEM_NTYPES] = H5FD_FLMAP_DICHOTOMY;
  std::copy(dichotomy, dichotomy + H5FD_MEM_NTYPES, c.fl_map);
  return c;
}

}  // namespace

bool h5_use_direct_driver(hid_t fapl, AtomicFile& file) {
  static const H5FD_class_t cls = make_class();
  static hid_t id = -1;
  static std::once_flag once;
  h5_setup();
  std::call_once(once, [] { id = H5FDregister(&cls); });
  if (id < 0) return false;
  DriverInfo info{&file};
  return H5Pset_driver(fapl, id, &info) >= 0;
}

}  // namespace deltakit
