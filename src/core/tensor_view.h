// A non-owning view of one tensor's bytes (usually inside an mmapped safetensors file), plus
// the block conversions between its stored dtype and fp32 that every pipeline step uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "src/core/dtype.h"

namespace deltakit {

class MappedFile;

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<uint64_t> shape;
  std::span<const uint8_t> bytes;
  // Where `bytes` lie in a file, for a pass that copies blocks out by pread instead of touching
  // the mapping (read_elements); nullptr for bytes only in memory.
  const MappedFile* file = nullptr;
  uint64_t file_offset = 0;

  uint64_t numel() const;
  // Rows and columns as a matrix: the last dim is columns, the rest flatten into rows; a
  // scalar or 1-D tensor is one row.
  uint64_t rows() const;
  uint64_t cols() const;
};

std::string shape_string(const std::vector<uint64_t>& shape);

// The raw bytes of elements [first, first + count) into dst: by pread where the view knows its
// file (no page of the mapping is touched: no page-table work, nothing added to the resident
// set), else copied from memory. Throws Error(Io) naming the file if it ended early.
void read_elements(const TensorView& t, uint64_t first, uint64_t count, uint8_t* dst);

// Decode elements [first, first + out.size()) of a F32/F16/BF16 buffer into fp32.
void decode_to_f32(DType dtype, std::span<const uint8_t> bytes, uint64_t first, std::span<float> out);
// Encode fp32 values into `out` (sized n * dtype_size) as F32/F16/BF16, round to nearest even.
void encode_from_f32(DType dtype, std::span<const float> in, std::span<uint8_t> out);
// out = round_dtype(base + α·δ) in base's dtype, block by block; `delta` is numel little-endian
// fp32 of any alignment (a payload inside a file, or a decoded vector's bytes).
void add_scaled_delta(const TensorView& base, std::span<const uint8_t> delta, float alpha, std::span<uint8_t> out);
// The same over a block: `base` and `out` hold delta.size() entries of `dtype`.
void add_scaled_delta(DType dtype, std::span<const uint8_t> base, std::span<const float> delta, float alpha,
                      std::span<uint8_t> out);

}  // namespace deltakit
