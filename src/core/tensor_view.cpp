#include "src/core/tensor_view.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "src/core/half.h"
#include "src/core/mapped_file.h"

namespace deltakit {

uint64_t TensorView::numel() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;  // validated against overflow when the header was read
  return n;
}

uint64_t TensorView::cols() const { return shape.empty() ? 1 : shape.back(); }

uint64_t TensorView::rows() const {
  uint64_t c = cols();
  return c == 0 ? 0 : numel() / c;
}

std::string shape_string(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

void read_elements(const TensorView& t, uint64_t first, uint64_t count, uint8_t* dst) {
  const size_t es = dtype_size(t.dtype);
  if (t.file)
    t.file->read_into(t.file_offset + first * es, count * es, dst);
  else
    std::memcpy(dst, t.bytes.data() + first * es, count * es);
}

void decode_to_f32(DType dtype, std::span<const uint8_t> bytes, uint64_t first, std::span<float> out) {
  const size_t n = out.size();
  switch (dtype) {
    case DType::F32:
      if (n) std::memcpy(out.data(), bytes.data() + first * 4, n * 4);  // an empty span's data() may be null
      return;
    case DType::BF16: {
      const uint8_t* p = bytes.data() + first * 2;
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      return;
    }
    case DType::F16: {
      const uint8_t* p = bytes.data() + first * 2;
      for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      return;
    }
    default: throw std::logic_error("decode_to_f32: dtype is not F32/F16/BF16");
  }
}

void encode_from_f32(DType dtype, std::span<const float> in, std::span<uint8_t> out) {
  const size_t n = in.size();
  switch (dtype) {
    case DType::F32:
      if (n) std::memcpy(out.data(), in.data(), n * 4);
      return;
    case DType::BF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_bf16(in[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      return;
    case DType::F16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t h = f32_to_f16(in[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
      return;
    default: throw std::logic_error("encode_from_f32: dtype is not F32/F16/BF16");
  }
}

void add_scaled_delta(DType dtype, std::span<const uint8_t> base, std::span<const float> delta, float alpha,
                      std::span<uint8_t> out) {
  constexpr uint64_t kBlock = 4096;
  const uint64_t n = delta.size();
  const size_t es = dtype_size(dtype);
  float b[kBlock];
  for (uint64_t first = 0; first < n; first += kBlock) {
    const uint64_t m = std::min(kBlock, n - first);
    decode_to_f32(dtype, base, first, {b, m});
    for (uint64_t i = 0; i < m; ++i) b[i] = b[i] + alpha * delta[first + i];
    encode_from_f32(dtype, {b, m}, out.subspan(first * es, m * es));
  }
}

void add_scaled_delta(const TensorView& base, std::span<const uint8_t> delta, float alpha, std::span<uint8_t> out) {
  constexpr uint64_t kBlock = 4096;
  const uint64_t n = base.numel();
  const size_t es = dtype_size(base.dtype);
  float d[kBlock];
  for (uint64_t first = 0; first < n; first += kBlock) {
    const uint64_t m = std::min(kBlock, n - first);
    std::memcpy(d, delta.data() + first * 4, m * 4);  // the payload may sit unaligned
    add_scaled_delta(base.dtype, base.bytes.subspan(first * es, m * es), {d, m}, alpha,
                     out.subspan(first * es, m * es));
  }
}

}  // namespace deltakit
