// Shared helpers for the codec tests: reproducible vectors and encode/decode round trips.
#pragma once

#include <cmath>
#include <random>
#include <vector>

#include "src/codec/tensor_codec.h"
#include "src/core/tensor_view.h"

namespace deltakit::testing {

inline std::vector<float> normal_vector(uint64_t n, uint32_t seed, float stddev = 1e-3f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// A base tensor and a fine-tune of it (δ ~ N(0, 0.01²)), both in `dtype`, with views of both.
struct TensorPairFixture {
  std::vector<uint64_t> shape;
  DType dtype;
  std::vector<uint8_t> base, ft;
  TensorView base_view() const { return {"w", dtype, shape, base}; }
  TensorView ft_view() const { return {"w", dtype, shape, ft}; }
};

inline TensorPairFixture make_tensor_pair(std::vector<uint64_t> shape, DType dt, uint32_t seed) {
  uint64_t n = 1;
  for (uint64_t x : shape) n *= x;
  const auto b = normal_vector(n, seed, 1.0f), d = normal_vector(n, seed + 1, 0.01f);
  std::vector<float> f(n);
  for (uint64_t i = 0; i < n; ++i) f[i] = b[i] + d[i];
  TensorPairFixture p{std::move(shape), dt, std::vector<uint8_t>(n * dtype_size(dt)),
                      std::vector<uint8_t>(n * dtype_size(dt))};
  encode_from_f32(dt, b, p.base);
  encode_from_f32(dt, f, p.ft);
  return p;
}

struct RoundTrip {
  Encoded enc;
  std::vector<float> recon;
};

inline RoundTrip round_trip(const std::string& recipe, const std::vector<float>& delta, std::vector<uint64_t> shape,
                            DType dtype = DType::F32, unsigned threads = 1, Importance imp = {}) {
  Recipe r = parse_recipe(recipe, 7);
  TensorDelta t{"layer.weight", dtype, shape, delta, imp, threads};
  RoundTrip rt;
  rt.enc = encode_tensor(r, t);
  rt.recon = decode_tensor(rt.enc.attrs, EncodedSource(rt.enc), shape, dtype, "test");
  return rt;
}

inline const Part* find_part(const Encoded& e, const std::string& name) {
  for (const auto& p : e.parts)
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace deltakit::testing
