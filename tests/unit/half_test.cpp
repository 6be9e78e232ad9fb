// bf16/fp16 conversions against independent references: the compiler's _Float16 (correctly
// rounded in libgcc) for fp16, and an exact nearest-even search in double for bf16.
#include "src/core/half.h"

#include <gtest/gtest.h>

#include <cmath>

#include "src/core/philox.h"

using namespace deltakit;

namespace {
uint16_t ref_f16_bits(float f) {
  _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

// Nearest-even bf16 by comparing the two neighbours exactly in double.
uint16_t ref_bf16_bits(float f) {
  uint32_t u = f32_bits(f);
  uint16_t lo = static_cast<uint16_t>(u >> 16);
  if ((u & 0xffff) == 0) return lo;
  uint16_t hi = static_cast<uint16_t>(lo + 1);
  double x = f, vlo = bf16_to_f32(lo);
  double vhi = (hi & 0x7f80) == 0x7f80 ? std::copysign(std::ldexp(1.0, 128), x) : double(bf16_to_f32(hi));
  double dlo = std::fabs(x - vlo), dhi = std::fabs(vhi - x);
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1) ? hi : lo;
}
}  // namespace

TEST(Half, Fp16DecodeAllPatternsMatchesCompiler) {
  for (uint32_t h = 0; h < 65536; ++h) {
    uint16_t bits = static_cast<uint16_t>(h);
    _Float16 ref;
    std::memcpy(&ref, &bits, 2);
    float want = static_cast<float>(ref), got = f16_to_f32(bits);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(f32_bits(got), f32_bits(want)) << "fp16 bits " << h;
      EXPECT_EQ(f32_to_f16(got), bits) << "round trip of fp16 bits " << h;
    }
  }
}

TEST(Half, Fp16EncodeRandomAndEdgeFloatsMatchesCompiler) {
  TensorRng rng(7, "half");
  std::vector<float> vals = {0.0f,     -0.0f,         65504.0f,      65519.99f, 65520.0f, 1e9f,      -1e9f,   5.96e-8f,
                             2.98e-8f, 2.9802322e-8f, 6.1035156e-5f, 6.1e-5f,   INFINITY, -INFINITY, 1.0f / 3};
  for (uint64_t i = 0; i < 2'000'000; ++i) vals.push_back(f32_from_bits(rng.word(i)));
  for (uint64_t i = 0; i < 200'000; ++i)  // concentrate on fp16's range and subnormals
    vals.push_back(std::ldexp(1.0f + rng.word(i + 5'000'000) * 2.3283064e-10f, int(rng.word(i + 9'000'000) % 48) - 30));
  for (float v : vals) {
    if (std::isnan(v)) {
      uint16_t h = f32_to_f16(v);
      EXPECT_TRUE((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) << "NaN must stay NaN";
      continue;
    }
    ASSERT_EQ(f32_to_f16(v), ref_f16_bits(v)) << "float bits " << f32_bits(v);
  }
}

TEST(Half, Bf16EncodeMatchesExactNearestEven) {
  TensorRng rng(8, "bf16");
  std::vector<float> vals = {
      0.0f,   -0.0f,           3.4028235e38f, -3.4028235e38f, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256,
      1e-40f, 1.17549435e-38f, INFINITY,      -INFINITY};
  for (uint64_t i = 0; i < 2'000'000; ++i) vals.push_back(f32_from_bits(rng.word(i)));
  for (float v : vals) {
    uint16_t got = f32_to_bf16(v);
    if (std::isnan(v)) {
      EXPECT_TRUE(std::isnan(bf16_to_f32(got))) << "NaN must stay NaN";
      EXPECT_EQ(got & 0x8000, (f32_bits(v) >> 16) & 0x8000) << "NaN keeps its sign";
      continue;
    }
    ASSERT_EQ(got, ref_bf16_bits(v)) << "float bits " << f32_bits(v);
  }
}

TEST(Half, Bf16TiesGoToEven) {
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f808000u)), 0x3f80);  // tie, even below
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x3f818000u)), 0x3f82);  // tie, odd below -> up
  EXPECT_EQ(f32_to_bf16(f32_from_bits(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to Inf
}
