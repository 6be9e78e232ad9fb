// The `raw` codec: the exact delta. For F32/F16/BF16 tensors it stores δ = ft − base in fp32,
// which apply adds back as round_dtype(base + α·δ). For 16-bit weights that sum reproduces the
// fine-tune bit for bit whenever the two exponents are within 16 of each other — nearly always;
// every element where it does not (an fp32 subtraction that rounded, NaN payloads, Inf − Inf)
// is listed with the fine-tune's exact bits, patched in when α = 1. So raw is exact at α = 1
// for every input, NaN and Inf included. Tensors of other dtypes (ints, bool, fp8, f64) are not
// scaled: they are stored whole when they changed ("replace") and copied back as they are.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "src/core/tensor_view.h"

namespace deltakit {

enum class RawMode : uint8_t { Unchanged, Delta, Replace };
const char* raw_mode_name(RawMode m);

// What encoding found, besides the delta itself (which streams out through a sink).
struct RawEncoded {
  RawMode mode = RawMode::Unchanged;
  std::vector<uint64_t> exact_index;  // Delta: elements patched with the fine-tune's bits
  std::vector<uint8_t> exact_bits;    // Delta: dtype_size bytes per patched element
  uint64_t nonfinite = 0;             // NaN/Inf entries in the fine-tune (policy: warn, carry)
};

// Receives the fp32 delta in consecutive blocks (Delta mode only).
using F32Sink = std::function<void(std::span<const float>)>;

// base and ft must have the same dtype and shape (checked by the caller's plan). Replace mode
// stores ft.bytes as they are; the caller writes them.
RawEncoded raw_encode(const TensorView& base, const TensorView& ft, const F32Sink& delta_out);

// The stored parts of one tensor, as views of any alignment (e.g. inside an mmapped file).
struct RawPayload {
  RawMode mode = RawMode::Unchanged;
  std::span<const uint8_t> delta;        // numel little-endian fp32
  std::span<const uint8_t> exact_index;  // k little-endian uint64
  std::span<const uint8_t> exact_bits;   // k elements of the tensor's dtype
  std::span<const uint8_t> replacement;  // the fine-tune's bytes
};

// Writes base + α·δ in base's dtype into out (base.bytes.size() bytes). Sizes and indices of
// the payload are the caller's to validate (apply does, against the header).
void raw_apply(const TensorView& base, const RawPayload& p, float alpha, std::span<uint8_t> out);

}  // namespace deltakit
