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

#include <cmath>
#include <cstdint>
#include <cstring>

#include "src/core/half.h"
#include "src/core/host_device.h"
#include "src/core/philox_rounds.h"

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

// --- DARE alone (src/codec/dare.cpp's fused pass) ----------------------------------------------
// Entry i is kept iff its Philox word ≥ threshold (2^32 keeps none); a kept entry stores
// δ_i·scale rounded to the tensor's float type, and δ̂ is that stored value where kept, 0 elsewhere.
struct DareDraw {
  PhiloxStream stream;
  uint64_t threshold = 0;
  float scale = 1.0f;
};

// Keep bits of entries 32w .. 32w + 31 (bit k: entry 32w + k kept; none past n), eight Philox
// blocks of four words; `bad` gets whether an entry of δ was not finite.
DK_HD inline uint32_t dare_keep_word(const PairView& p, const DareDraw& d, uint64_t w, uint64_t n, bool& bad) {
  uint32_t bits = 0;
  for (unsigned b = 0; b < 8; ++b) {
    uint32_t words[4];
    philox_block_words(d.stream, 8 * w + b, words);
    for (unsigned k = 0; k < 4; ++k) {
      const uint64_t i = 32 * w + 4 * b + k;
      if (i >= n) return bits;
      bad |= not_finite(delta_at(p, i));
      bits |= static_cast<uint32_t>(words[k] >= d.threshold) << (4 * b + k);
    }
  }
  return bits;
}

// The kept entries of word w (its keep bits), in increasing order, into slots from `slot` on:
// their positions, and their values stored in the pair's type.
DK_HD inline void dare_compact_word(const PairView& p, const DareDraw& d, uint64_t w, uint32_t bits, uint64_t slot,
                                    uint64_t* positions, uint8_t* values) {
  for (unsigned k = 0; k < 32; ++k)
    if (bits >> k & 1u) {
      const uint64_t i = 32 * w + k;
      positions[slot] = i;
      store_elem(p.type, values, slot, delta_at(p, i) * d.scale);
      ++slot;
    }
}

// A float rounded to t and read back (a stored value as decoding reads it).
DK_HD inline float round_to(ElemType t, float v) {
  if (t == ElemType::BF16) return bf16_to_f32(f32_to_bf16(v));
  if (t == ElemType::F16) return f16_to_f32(f32_to_f16(v));
  return v;
}

// The error's fixed order (src/codec/error_norms.h): pieces of kErrPiece entries, kErrLanes
// double lanes in a piece (lane l adds the piece's entries l, l + 8, … in order).
constexpr uint64_t kErrPiece = 16384;
constexpr unsigned kErrLanes = 8;

// Lane `lane` of one piece's Σ(δ − δ̂)² (err) and Σδ² (sq) under DARE.
DK_HD inline void dare_error_lane(const PairView& p, const DareDraw& d, uint64_t first, uint64_t len, unsigned lane,
                                  double& err, double& sq) {
  err = 0.0, sq = 0.0;
  for (uint64_t k = lane; k < len; k += kErrLanes) {
    const uint64_t i = first + k;
    const float delta = delta_at(p, i);
    const float recon = philox_word(d.stream, i) >= d.threshold ? round_to(p.type, delta * d.scale) : 0.0f;
    const double x = static_cast<double>(delta), e = x - static_cast<double>(recon);
    err += e * e;
    sq += x * x;
  }
}

// --- quant alone (src/codec/quant.cpp's block encoder) -----------------------------------------
// A group's range by the CPU's scalar loop from ±inf (lo = min(lo, δ) keeps the first of equal
// values, which decides a ±0 bound), step = (hi − lo)/qmax; a code is round-half-even of
// (δ − lo)/step clamped to [0, qmax], 0 where step is 0; δ̂ = lo + code·step.
DK_HD inline uint32_t quant_code(float d, float lo, float step, float qmax) {
  if (step == 0.0f) return 0;
  const float q = rintf((d - lo) / step);
  return static_cast<uint32_t>(q < 0.0f ? 0.0f : (qmax < q ? qmax : q));
}

// Group [first, first + len): its lo and step, its codes packed LSB first from bit 0 of out (the
// group's own bytes: len·bits is a multiple of 8 but for the last group, whose last byte is
// zero-padded); `bad` gets whether an entry of δ was not finite.
DK_HD inline void quant_group(const PairView& p, uint64_t first, uint64_t len, unsigned bits, float& lo, float& step,
                              uint8_t* out, bool& bad) {
  float l = INFINITY, h = -INFINITY;
  for (uint64_t k = 0; k < len; ++k) {
    const float d = delta_at(p, first + k);
    bad |= not_finite(d);
    l = d < l ? d : l;
    h = h < d ? d : h;
  }
  const float qmax = static_cast<float>((1u << bits) - 1);
  lo = l, step = (h - l) / qmax;
  uint32_t acc = 0, held = 0;  // bits not yet written, fewer than 8 after each write
  for (uint64_t k = 0; k < len; ++k) {
    acc |= quant_code(delta_at(p, first + k), lo, step, qmax) << held;
    for (held += bits; held >= 8; held -= 8, acc >>= 8) *out++ = static_cast<uint8_t>(acc);
  }
  if (held) *out = static_cast<uint8_t>(acc);
}

// Lane `lane` of one piece's Σ(δ − δ̂)² (err) and Σδ² (sq) under quant, the groups' lo and step known.
DK_HD inline void quant_error_lane(const PairView& p, const float* lo, const float* step, uint64_t group, unsigned bits,
                                   uint64_t first, uint64_t len, unsigned lane, double& err, double& sq) {
  const float qmax = static_cast<float>((1u << bits) - 1);
  err = 0.0, sq = 0.0;
  for (uint64_t k = lane; k < len; k += kErrLanes) {
    const uint64_t i = first + k, g = i / group;
    const float delta = delta_at(p, i);
    const float recon = lo[g] + static_cast<float>(quant_code(delta, lo[g], step[g], qmax)) * step[g];
    const double x = static_cast<double>(delta), e = x - static_cast<double>(recon);
    err += e * e;
    sq += x * x;
  }
}

// Field i of codes packed LSB first, `bits` wide (src/codec/bits.h's packed_field).
DK_HD inline uint32_t packed_code(const uint8_t* codes, uint64_t i, unsigned bits) {
  const uint64_t bit = i * bits;
  uint32_t v = codes[bit / 8] >> (bit % 8);
  if (bit % 8 + bits > 8) v |= static_cast<uint32_t>(codes[bit / 8 + 1]) << (8 - bit % 8);
  return v & ((1u << bits) - 1);
}

// A quant δ̂ applied to entry i: base_i + α·(lo + code·step), rounded to the base's type.
DK_HD inline float quant_applied(ElemType t, const uint8_t* base, const uint8_t* codes, const float* lo,
                                 const float* step, uint64_t group, unsigned bits, float alpha, uint64_t i) {
  const uint64_t g = i / group;
  const float d = lo[g] + static_cast<float>(packed_code(codes, i, bits)) * step[g];
  return load_elem(t, base, i) + alpha * d;
}

// A sparse δ̂ applied to entry i: base_i + α·δ̂_i, δ̂ dense (the stored values scattered over
// zeros, as the CPU's range decoder gives it), rounded to the base's type (add_scaled_delta).
DK_HD inline float sparse_applied(ElemType t, const uint8_t* base, const float* dense, float alpha, uint64_t i) {
  return load_elem(t, base, i) + alpha * dense[i];
}

}  // namespace deltakit::gpu
