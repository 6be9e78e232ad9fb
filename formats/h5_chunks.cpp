#include "formats/h5_chunks.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "src/core/error.h"

namespace deltakit {

namespace {

// HDF5's shuffle filter (to planes: byte b of every element, then byte b + 1, ...) and its
// inverse (element i's bytes gathered from the planes); one element: unchanged. Elements outside,
// bytes inside: one stream per byte of the element, each in order (the strided loop over bytes
// first was 17% of a raw compress). E = 0: any element size.
template <bool ToPlanes, size_t E>
void planes_fixed(const uint8_t* src, size_t count, size_t esize, uint8_t* dst) {
  const size_t e = E ? E : esize;
  for (size_t i = 0; i < count; ++i)
    for (size_t b = 0; b < e; ++b) {
      if constexpr (ToPlanes)
        dst[b * count + i] = src[i * e + b];
      else
        dst[i * e + b] = src[b * count + i];
    }
}

template <bool ToPlanes>
void byte_planes(const uint8_t* src, size_t n, size_t esize, uint8_t* dst) {
  const size_t count = n / esize;
  if (esize <= 1 || count <= 1) {
    std::memcpy(dst, src, n);
    return;
  }
  switch (esize) {
    case 2: planes_fixed<ToPlanes, 2>(src, count, esize, dst); break;
    case 4: planes_fixed<ToPlanes, 4>(src, count, esize, dst); break;
    case 8: planes_fixed<ToPlanes, 8>(src, count, esize, dst); break;
    default: planes_fixed<ToPlanes, 0>(src, count, esize, dst);
  }
  std::memcpy(dst + count * esize, src + count * esize, n - count * esize);
}

ZSTD_DCtx* thread_dctx() {
  struct Free {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  };
  thread_local std::unique_ptr<ZSTD_DCtx, Free> dctx(ZSTD_createDCtx());
  return dctx.get();
}

// A reused compression context per thread: ZSTD_compressCCtx writes what ZSTD_compress writes.
ZSTD_CCtx* thread_cctx() {
  struct Free {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  thread_local std::unique_ptr<ZSTD_CCtx, Free> cctx(ZSTD_createCCtx());
  return cctx.get();
}

constexpr uint64_t kChunkTarget = 1u << 20;  // bytes per chunk we write

// Full trailing dims, the leading dim cut to about kChunkTarget bytes.
std::vector<uint64_t> chunk_shape(const std::vector<uint64_t>& dims, size_t esize) {
  std::vector<uint64_t> chunk(dims.size());
  uint64_t inner = esize;
  for (size_t d = 1; d < dims.size(); ++d) chunk[d] = std::max<uint64_t>(dims[d], 1), inner *= chunk[d];
  chunk[0] = std::clamp<uint64_t>(kChunkTarget / inner, 1, std::max<uint64_t>(dims[0], 1));
  return chunk;
}

}  // namespace

uint32_t h5_fletcher32(const uint8_t* data, size_t n) {
  size_t words = n / 2;
  uint32_t sum1 = 0, sum2 = 0;
  while (words) {
    const auto run = static_cast<uint32_t>(std::min<size_t>(words, 360));
    words -= run;
    // a run's sums in closed form: word i adds w_i to sum1 and, through it, (run - i)·w_i to
    // sum2, which also gains run·sum1. Independent per word, so the loop vectorizes (one chained
    // add per word did not); the same integers, so the same checksum
    uint32_t a = 0, b = 0;
    for (uint32_t i = 0; i < run; ++i) {
      uint16_t v;
      std::memcpy(&v, data + 2 * static_cast<size_t>(i), 2);
      const uint32_t w = __builtin_bswap16(v);  // big-endian words
      a += w;
      b += (run - i) * w;
    }
    data += 2 * static_cast<size_t>(run);
    sum2 += run * sum1 + b;
    sum1 += a;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (n % 2) {
    sum1 += uint32_t{*data} << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return (sum2 << 16) | sum1;
}

FilteredPart filter_part(const Part& p, int zstd_level, const std::string& where) {
  const size_t esize = part_kind_size(p.kind);
  if (p.bytes.size() != p.count() * esize)
    throw Error(ErrorCode::Usage, where,
                "part '" + p.name + "' has " + std::to_string(p.bytes.size()) + " bytes for " +
                    std::to_string(p.count()) + " elements");
  FilteredPart f{p.name, p.kind, p.dims.empty() ? std::vector<uint64_t>{1} : p.dims, {}, p.encoding, zstd_level, {}};
  f.chunk = chunk_shape(f.dims, esize);
  if (p.bytes.empty()) return f;                          // nothing written: HDF5 reads the fill value (zeros)
  const uint64_t row_bytes = p.bytes.size() / f.dims[0];  // bytes per leading-dim index
  const uint64_t chunk_bytes = f.chunk[0] * row_bytes;
  ZSTD_CCtx* cctx = thread_cctx();
  if (!cctx) throw Error(ErrorCode::Io, where, "cannot make a zstd context");
  // scratch reused across calls (no per-chunk zeroing): the edge chunk's padding, the shuffled
  // bytes, zstd's output before it is cut to size
  thread_local std::vector<uint8_t> padded, shuffled, frame;
  if (padded.size() < chunk_bytes) padded.resize(chunk_bytes), shuffled.resize(chunk_bytes);
  if (frame.size() < ZSTD_compressBound(chunk_bytes)) frame.resize(ZSTD_compressBound(chunk_bytes));
  for (uint64_t first = 0; first < p.bytes.size(); first += chunk_bytes) {
    const uint64_t n = std::min<uint64_t>(chunk_bytes, p.bytes.size() - first);
    const uint8_t* src = p.bytes.data() + first;
    if (n < chunk_bytes) {  // the edge chunk, padded with zeros as HDF5 pads it
      std::memcpy(padded.data(), src, n);
      std::memset(padded.data() + n, 0, chunk_bytes - n);
      src = padded.data();
    }
    const uint8_t* in = src;
    if (esize > 1) byte_planes<true>(src, chunk_bytes, esize, shuffled.data()), in = shuffled.data();
    const size_t got = ZSTD_compressCCtx(cctx, frame.data(), frame.size(), in, chunk_bytes, zstd_level);
    if (ZSTD_isError(got))
      throw Error(ErrorCode::Io, where, "zstd failed on part '" + p.name + "': " + ZSTD_getErrorName(got));
    std::vector<uint8_t> out;
    out.reserve(got + 4);
    out.assign(frame.begin(), frame.begin() + static_cast<std::ptrdiff_t>(got));
    const uint32_t sum = h5_fletcher32(out.data(), got);
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<uint8_t>(sum >> (8 * b)));  // little-endian, as HDF5
    f.chunks.push_back(std::move(out));
  }
  return f;
}

bool unfilter_chunk(const uint8_t* raw, size_t raw_size, uint64_t chunk_bytes, size_t esize, uint8_t* out,
                    uint64_t keep) {
  if (raw_size < 4 || keep > chunk_bytes) return false;
  const size_t frame = raw_size - 4;
  uint32_t stored = 0;
  for (int b = 0; b < 4; ++b) stored |= uint32_t{raw[frame + b]} << (8 * b);
  const uint32_t sum = h5_fletcher32(raw, frame);
  if (stored != sum && stored != __builtin_bswap32(sum)) return false;
  if (ZSTD_getFrameContentSize(raw, frame) != chunk_bytes) return false;
  ZSTD_DCtx* dctx = thread_dctx();
  if (!dctx) return false;
  // straight into `out` where nothing needs reordering or cutting; else through scratch
  const bool direct = esize <= 1 && keep == chunk_bytes;
  thread_local std::vector<uint8_t> plain;
  if (!direct && plain.size() < chunk_bytes) plain.resize(chunk_bytes);
  uint8_t* to = direct ? out : plain.data();
  const size_t got = ZSTD_decompressDCtx(dctx, to, chunk_bytes, raw, frame);
  if (ZSTD_isError(got) || got != chunk_bytes) return false;
  if (direct) return true;
  if (esize <= 1) {
    std::memcpy(out, plain.data(), keep);
  } else if (keep == chunk_bytes) {
    byte_planes<false>(plain.data(), chunk_bytes, esize, out);
  } else {  // the edge chunk: whole, then its rows in the tensor
    thread_local std::vector<uint8_t> whole;
    if (whole.size() < chunk_bytes) whole.resize(chunk_bytes);
    byte_planes<false>(plain.data(), chunk_bytes, esize, whole.data());
    std::memcpy(out, whole.data(), keep);
  }
  return true;
}

std::recursive_mutex& h5_lock() {
  static std::recursive_mutex m;
  return m;
}

}  // namespace deltakit
