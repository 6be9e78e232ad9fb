// The `raw` codec: the exact delta. For F32/F16/BF16 tensors it stores δ = ft − base in fp32,
// which apply adds back as round_dtype(base + α·δ). For 16-bit weights that sum reproduces the
// fine-tune bit for bit whenever the two exponents are within 16 of each other — nearly always;
// every element where it does not (an fp32 subtraction that rounded, NaN payloads, Inf − Inf)
// is listed with the fine-tune's exact bits, patched in when α = 1. So raw is exact at α = 1
// for every input, NaN and Inf included. Tensors of other dtypes (ints, bool, fp8, f64) are not
// scaled: they are stored whole when they changed ("replace") and copied back as they are.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "src/core/tensor_view.h"

namespace deltakit {

enum class RawMode : uint8_t { Unchanged, Delta, Replace };

struct RawDelta {
  RawMode mode = RawMode::Unchanged;
  std::vector<float> delta;             // Delta: fp32, numel entries
  std::vector<uint64_t> exact_index;    // Delta: elements patched with the fine-tune's bits
  std::vector<uint8_t> exact_bits;      // Delta: dtype_size bytes per patched element
  std::vector<uint8_t> replacement;     // Replace: the fine-tune's bytes
  uint64_t nonfinite = 0;               // NaN/Inf entries in the fine-tune (policy: warn, carry)
};

const char* raw_mode_name(RawMode m);

// base and ft must have the same dtype and shape (checked by the caller's plan).
RawDelta raw_encode(const TensorView& base, const TensorView& ft);

// Writes base + α·δ in base's dtype into out (base.bytes.size() bytes).
void raw_apply(const TensorView& base, const RawDelta& d, float alpha, std::span<uint8_t> out);

}  // namespace deltakit
