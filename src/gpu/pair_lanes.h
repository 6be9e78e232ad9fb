// The per-thread arithmetic of the GPU's fused pass, in DK_HD functions: a CUDA thread runs one
// of these over its slice of the tensor, and the host reference (host_reference.h) runs the same
// function over every slice in a loop. Tests compare the host reference with the CPU codec on
// every machine, so the decomposition — which lanes add which values in which order — is checked
// where no GPU is; the device tests then compare the kernels with the host reference.
//
// The order is the CPU codec's (src/codec/bitdelta.h, BitDeltaLayout): float lanes for Σ|δ| per
// run, double lanes for Σδ² per piece, lanes added in index order. nvcc builds this with
// -fmad=false, so a·b + c is two roundings on the GPU as on the CPU (-ffp-contract=off).
#pragma once

#include <cstdint>
#include <cstring>

#include "src/core/half.h"
#include "src/core/host_device.h"

namespace deltakit::gpu {

enum class ElemType : uint8_t { F32, BF16, F16 };

DK_HD inline uint64_t elem_bytes(ElemType t) { return t == ElemType::F32 ? 4 : 2; }

// A tensor pair's raw bytes, both of one element type.
struct PairView {
  const uint8_t* base = nullptr;
  const uint8_t* ft = nullptr;
  ElemType type = ElemType::F32;
};

// Element i of a tensor's bytes (little-endian, as safetensors stores them). On the GPU the bytes
// sit in cudaMalloc'ed buffers, aligned; on the host a mapped tensor may not be.
DK_HD inline float load_elem(ElemType t, const uint8_t* p, uint64_t i) {
#if defined(__CUDA_ARCH__)
  if (t == ElemType::F32) return reinterpret_cast<const float*>(p)[i];
  const uint16_t h = reinterpret_cast<const uint16_t*>(p)[i];
#else
  if (t == ElemType::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
#endif
  return t == ElemType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

DK_HD inline void store_elem(ElemType t, uint8_t* p, uint64_t i, float v) {
  if (t == ElemType::F32) {
#if defined(__CUDA_ARCH__)
    reinterpret_cast<float*>(p)[i] = v;
#else
    std::memcpy(p + 4 * i, &v, 4);
#endif
    return;
  }
  const uint16_t h = t == ElemType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
#if defined(__CUDA_ARCH__)
  reinterpret_cast<uint16_t*>(p)[i] = h;
#else
  std::memcpy(p + 2 * i, &h, 2);
#endif
}

// δ_i = ft_i − base_i in fp32 (src/codec/codec.cpp's delta_block).
DK_HD inline float delta_at(const PairView& p, uint64_t i) {
  return load_elem(p.type, p.ft, i) - load_elem(p.type, p.base, i);
}

DK_HD inline bool not_finite(float d) { return (f32_bits(d) & 0x7f800000u) == 0x7f800000u; }

// Lane `lane` of a run's Σ|δ|: the run's values lane, lane + lanes, … added in order in float.
DK_HD inline float abs_lane(const PairView& p, uint64_t first, uint64_t len, unsigned lane, unsigned lanes) {
  float s = 0.0f;
  for (uint64_t k = lane; k < len; k += lanes)
    s += f32_from_bits(f32_bits(delta_at(p, first + k)) & 0x7fffffffu);  // |δ|
  return s;
}

// Lane `lane` of a piece's Σδ², each value squared in double.
DK_HD inline double sq_lane(const PairView& p, uint64_t first, uint64_t len, unsigned lane, unsigned lanes) {
  double s = 0.0;
  for (uint64_t k = lane; k < len; k += lanes) {
    const double d = delta_at(p, first + k);
    s += d * d;
  }
  return s;
}

// Lanes added lane 0 first (float for Σ|δ|, double for Σδ²).
template <class T>
DK_HD inline T add_lanes(const T* lane, unsigned lanes) {
  T s = 0;
  for (unsigned l = 0; l < lanes; ++l) s += lane[l];
  return s;
}

// Sign bits of entries 32w .. 32w + 31 (bit k = entry 32w + k is ≥ 0; zeros past n), which are
// bytes 4w .. 4w + 3 of the packed stream (LSB first); `bad` gets whether one was not finite.
DK_HD inline uint32_t sign_word(const PairView& p, uint64_t w, uint64_t n, bool& bad) {
  uint32_t bits = 0;
  for (uint64_t k = 0; k < 32 && 32 * w + k < n; ++k) {
    const float d = delta_at(p, 32 * w + k);
    bad |= not_finite(d);
    bits |= static_cast<uint32_t>(d >= 0.0f) << k;
  }
  return bits;
}

// The scale unit of entry i (src/codec/value_stream.h's unit_offsets over a dense stream).
struct UnitMap {
  uint64_t width = ~uint64_t{0};  // entries per unit: a row's, a group's, or every entry (matrix)
};
DK_HD inline uint64_t unit_of(const UnitMap& m, uint64_t i) { return i / m.width; }

// One-level BitDelta applied to entry i: base_i + α·(±scale of i's unit), rounded to the base's
// type (add_scaled_delta in src/core/tensor_view.cpp; the decoded value as bitdelta_decode
// builds it, sign bit set from the packed bit).
DK_HD inline float bitdelta_applied(ElemType t, const uint8_t* base, const uint8_t* signs, float scale, float alpha,
                                    uint64_t i) {
  const float d = f32_from_bits(f32_bits(scale) | ((~static_cast<uint32_t>(signs[i / 8] >> (i % 8)) & 1u) << 31));
  return load_elem(t, base, i) + alpha * d;
}

}  // namespace deltakit::gpu
