// A dataset's chunks run through the adapter's filter pipeline — byte shuffle (multi-byte
// elements), zstd, Fletcher32 — by our own code instead of inside HDF5. HDF5 (Debian's build is
// not thread-safe) then only places the finished chunks (H5Dwrite_chunk), so several workers of
// one process compress their tensors at once and take the HDF5 lock only for the placing.
// The bytes equal HDF5's own pipeline's (tests/unit/h5_chunks_test.cpp compares them).
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "src/core/parts.h"

namespace deltakit {

// zstd level 1: on every payload we measured (shuffled fp32 and bf16 deltas, DARE positions,
// quant codes) as small as level 3 or smaller (a raw adapter -5%) at 2-3x its speed
// (docs/formats.md)
constexpr int kDefaultZstdLevel = 1;

// One part ready for the file: its metadata, its chunk shape and every chunk's filtered bytes
// (chunk c covers leading-dim rows [c * chunk[0], (c + 1) * chunk[0]); the last one is padded
// with zeros to a whole chunk, as HDF5 pads an edge chunk with the fill value).
struct FilteredPart {
  std::string name;
  PartKind kind = PartKind::U8;
  std::vector<uint64_t> dims;   // as stored: a scalar part is {1}
  std::vector<uint64_t> chunk;  // full trailing dims, the leading dim cut to about 1 MiB
  std::string encoding;
  int zstd_level = kDefaultZstdLevel;
  std::vector<std::vector<uint8_t>> chunks;
};

// Thread-safe. `where` names the output in errors.
FilteredPart filter_part(const Part& p, int zstd_level, const std::string& where);

// HDF5's Fletcher32 (Fletcher's sum over big-endian 16-bit words, reduced every 360 words).
uint32_t h5_fletcher32(const uint8_t* data, size_t n);

// The way back for one stored chunk of `raw_size` bytes (zstd frame + Fletcher32), as HDF5's
// pipeline reads it, by our own code so a reader decodes outside the HDF5 lock: the checksum
// checked (HDF5 also accepts it byte-reversed, as files of its 1.6 era wrote it), the frame
// decompressed to exactly `chunk_bytes` (its declared size too, as our zstd filter asks), the
// bytes unshuffled when `esize` > 1, and the first `keep` of them written to `out`.
// False where the chunk is damaged.
bool unfilter_chunk(const uint8_t* raw, size_t raw_size, uint64_t chunk_bytes, size_t esize, uint8_t* out,
                    uint64_t keep);

// Every HDF5 call of a process whose workers run at once goes through this lock (recursive: an
// adapter's part reads take it themselves, and may run inside a holder's section).
std::recursive_mutex& h5_lock();

}  // namespace deltakit
