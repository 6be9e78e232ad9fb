// The input of a value coder (bitdelta, quant): a stream of values (a dense tensor in row-major
// order, or the kept values of a sparsifier), the stream's row boundaries (for per-row scales),
// and an optional skip mask of entries a cherry modifier carries instead, which are left out of
// every statistic the coder fits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace deltakit {

struct ValueStream {
  std::span<const float> values;
  std::span<const uint64_t> row_offsets;  // rows + 1 entries, first 0, last values.size()
  std::span<const uint8_t> skip;          // empty or one byte per value
  // Where the coder may write what each value decodes to (one float per value), setting
  // Encoded::recon_written: a cherry pass scores against it without decoding the tensor again.
  float* recon_out = nullptr;
  bool skipped(uint64_t i) const { return !skip.empty() && skip[i]; }
};

// Row offsets of a dense rows × cols tensor.
inline std::vector<uint64_t> dense_row_offsets(uint64_t rows, uint64_t cols) {
  std::vector<uint64_t> off(rows + 1);
  for (uint64_t r = 0; r <= rows; ++r) off[r] = r * cols;
  return off;
}

// How a coder partitions a stream into units that share a scale: the whole stream ("matrix"),
// rows ("row"), or runs of G consecutive values ("group").
enum class ScaleUnit : uint8_t { Matrix, Row, Group };
const char* scale_unit_name(ScaleUnit u);

// Unit boundaries (units + 1 offsets).
std::vector<uint64_t> unit_offsets(ScaleUnit u, uint64_t group, uint64_t count, std::span<const uint64_t> row_offsets);

}  // namespace deltakit
