// A tensor too large for one worker, split into row blocks that different ranks and threads
// encode. Each block's fused pass (stats_pass over its rows) yields its share of what a device's
// pass yields for the whole tensor (src/codec/device_pass.h): BitDelta's run and piece sums and
// sign bits, quant's codes, ranges and error pieces. Those shares joined in row order are the
// whole tensor's, so the codec's *_encoder_from_* stores the same bytes as the unsplit pass, for
// any split. Blocks start on split_rows(); the job (src/pipeline/compress.cpp) draws them and
// keeps each block's share in its journal between the blocks' passes and the join.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "src/codec/bitdelta_layout.h"
#include "src/codec/codec.h"
#include "src/codec/device_pass.h"

namespace deltakit {

// The row granularity of a split of this recipe on rows of `cols`: a block's first entry must lie
// on a byte of codes and signs, on a scale unit or quant group, and on a 16384-entry piece of the
// fixed summation orders. 0 where the recipe has no split form (anything but one-level BitDelta
// alone or quant alone with its block form).
uint64_t split_rows(const Recipe& r, uint64_t cols);

// Row starts of a rows-row tensor's blocks of about `block_rows` rows each (rounded to split_rows),
// then rows; one block (no split) where the tensor is not larger than that.
std::vector<uint64_t> split_blocks(const Recipe& r, uint64_t rows, uint64_t cols, uint64_t block_rows);

// What one block's pass found.
struct BlockPass {
  bool changed = false, nonfinite = false;
  BitDeltaSums bitdelta;  // one-level BitDelta
  QuantGroups quant;      // quant
};

// The pass over rows [r0, r1) of the pair (whole tensors' views; the rows read by pread).
BlockPass block_pass(const Recipe& r, const TensorView& base, const TensorView& ft, uint64_t r0, uint64_t r1);

// Its bytes in a journal file, and back: every count checked against the file's size and the
// block's shape (rows × cols); Error(AdapterInvalid) naming `where` otherwise.
std::vector<uint8_t> block_pass_bytes(const BlockPass& b);
BlockPass block_pass_from_bytes(std::span<const uint8_t> bytes, const Recipe& r, uint64_t rows, uint64_t cols,
                                const std::string& where);

// The whole tensor's prepared δ from its blocks' passes, added in row order (each freed as it is
// appended to the whole, whose arrays are sized once): unchanged, raw standing in (a NaN/Inf
// anywhere), or the stream encoder that stores the unsplit pass's bytes. Its base fingerprint is
// the caller's to add (no block saw the whole base).
class BlockJoiner {
 public:
  BlockJoiner(const Recipe& r, const TensorView& ft);
  void add(BlockPass b);
  PreparedDelta finish();

 private:
  const Recipe& r_;
  uint64_t n_, cols_;
  bool changed_ = false, nonfinite_ = false;
  BlockPass all_;
};

}  // namespace deltakit
