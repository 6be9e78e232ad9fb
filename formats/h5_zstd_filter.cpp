// The zstd HDF5 filter (registered id 32015), shared by the library (registered in-process)
// and the optional HDF5 plugin (formats/h5_zstd_plugin.cpp) that lets h5py, h5dump and other
// HDF5 programs read our payloads.
#include "formats/h5_zstd_filter.h"

#include <zstd.h>

#include <cstdlib>

namespace deltakit {

namespace {

// The in-process filter allocates through HDF5 as its docs ask; the plugin, loaded into hosts
// (h5py) whose HDF5 symbols it cannot see, uses malloc/free as the standard zstd plugin does
// (the same allocator in HDF5's release builds).
#ifdef DELTAKIT_H5_PLUGIN
void* filter_alloc(size_t n) { return malloc(n); }
void filter_free(void* p) { free(p); }
#else
void* filter_alloc(size_t n) { return H5allocate_memory(n, false); }
void filter_free(void* p) { H5free_memory(p); }
#endif

// --- zstd filter (id 32015) ------------------------------------------------------------------
// cd_values[0]: compression level (as the standard plugin reads it); cd_values[1]: the chunk's
// uncompressed byte size, added by set_local when a dataset is created. The standard plugin
// ignores [1]; we require it when decoding and refuse any frame that does not declare exactly
// that size, so a crafted frame can neither make us allocate nor write past one chunk.
size_t zstd_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes, size_t* buf_size,
                   void** buf) {
  if (flags & H5Z_FLAG_REVERSE) {
    if (cd_nelmts < 2) return 0;
    const size_t expect = cd_values[1];
    unsigned long long declared = ZSTD_getFrameContentSize(*buf, nbytes);
    if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN || declared != expect) return 0;
    void* out = filter_alloc(expect ? expect : 1);
    if (!out) return 0;
    size_t got = ZSTD_decompress(out, expect, *buf, nbytes);
    if (ZSTD_isError(got) || got != expect) {
      filter_free(out);
      return 0;
    }
    filter_free(*buf);
    *buf = out;
    *buf_size = expect ? expect : 1;
    return got;
  }
  const int level = cd_nelmts > 0 ? static_cast<int>(cd_values[0]) : 3;
  const size_t bound = ZSTD_compressBound(nbytes);
  void* out = filter_alloc(bound);
  if (!out) return 0;
  size_t got = ZSTD_compress(out, bound, *buf, nbytes, level);
  if (ZSTD_isError(got)) {
    filter_free(out);
    return 0;
  }
  filter_free(*buf);
  *buf = out;
  *buf_size = bound;
  return got;
}

#ifndef DELTAKIT_H5_PLUGIN
herr_t zstd_set_local(hid_t dcpl, hid_t type, hid_t) {
  hsize_t dims[32];
  int rank = H5Pget_chunk(dcpl, 32, dims);
  if (rank <= 0) return -1;
  unsigned long long bytes = H5Tget_size(type);
  for (int i = 0; i < rank; ++i) bytes *= dims[i];
  if (bytes > 0xffffffffull) return -1;
  unsigned flags = 0, values[2] = {3, 0};
  size_t n = 2;
  if (H5Pget_filter_by_id2(dcpl, kZstdFilterId, &flags, &n, values, 0, nullptr, nullptr) < 0) return -1;
  unsigned out[2] = {n > 0 ? values[0] : 3u, static_cast<unsigned>(bytes)};
  return H5Pmodify_filter(dcpl, kZstdFilterId, flags, 2, out);
}
#endif

}  // namespace

const H5Z_class2_t kZstdFilterClass = {
    H5Z_CLASS_T_VERS, kZstdFilterId, 1, 1, "zstd (deltakit)", nullptr,
#ifdef DELTAKIT_H5_PLUGIN
    nullptr,  // a reader only: datasets are created by deltakit itself
#else
    zstd_set_local,
#endif
    zstd_filter,
};


}  // namespace deltakit
