// The raw codec is exact at alpha = 1 for every input, including the cases fp32 arithmetic
// cannot carry (huge exponent gaps, NaN payloads, Inf - Inf), and scales by alpha otherwise.
#include <gtest/gtest.h>

#include <cmath>

#include "src/codec/raw.h"
#include "src/core/half.h"
#include "src/core/philox.h"

using namespace deltakit;

namespace {
struct Pair {
  std::vector<uint8_t> base, ft;
  TensorView bv, fv;
};

Pair make_pair(DType dt, const std::vector<float>& b, const std::vector<float>& f) {
  Pair p;
  const size_t es = dtype_size(dt);
  p.base.resize(b.size() * es);
  p.ft.resize(f.size() * es);
  encode_from_f32(dt, b, p.base);
  encode_from_f32(dt, f, p.ft);
  p.bv = {"t", dt, {b.size()}, p.base};
  p.fv = {"t", dt, {f.size()}, p.ft};
  return p;
}

// Encode through the streaming API, collecting the delta as the adapter writer would.
struct Encoded {
  RawEncoded info;
  std::vector<float> delta;
};
Encoded encode(const Pair& p) {
  Encoded e;
  e.info = raw_encode(p.bv, p.fv, [&](std::span<const float> b) { e.delta.insert(e.delta.end(), b.begin(), b.end()); });
  return e;
}

std::vector<uint8_t> apply(const Pair& p, const Encoded& e, float alpha) {
  RawPayload pl;
  pl.mode = e.info.mode;
  pl.delta = {reinterpret_cast<const uint8_t*>(e.delta.data()), e.delta.size() * 4};
  pl.exact_index = {reinterpret_cast<const uint8_t*>(e.info.exact_index.data()), e.info.exact_index.size() * 8};
  pl.exact_bits = e.info.exact_bits;
  pl.replacement = p.fv.bytes;
  std::vector<uint8_t> out(p.base.size());
  raw_apply(p.bv, pl, alpha, out);
  return out;
}
}  // namespace

TEST(RawCodec, ExactForRandomSftLikeDeltasInEveryFloatDtype) {
  for (DType dt : {DType::BF16, DType::F16, DType::F32}) {
    TensorRng rng(3, "raw");
    std::vector<float> b(10007), f(10007);  // not a multiple of the block size
    for (size_t i = 0; i < b.size(); ++i) {
      b[i] = (rng.word(2 * i) * 2.3283064e-10f - 0.5f) * 0.08f;
      f[i] = b[i] + (rng.word(2 * i + 1) * 2.3283064e-10f - 0.5f) * 0.004f;
    }
    Pair p = make_pair(dt, b, f);
    Encoded d = encode(p);
    EXPECT_EQ(d.info.mode, RawMode::Delta);
    EXPECT_EQ(d.delta.size(), b.size());
    EXPECT_EQ(apply(p, d, 1.0f), p.ft) << dtype_name(dt);
    EXPECT_EQ(apply(p, d, 0.0f), p.base) << dtype_name(dt);
  }
}

TEST(RawCodec, PatchesWhatFp32CannotCarry) {
  const float nan_payload = f32_from_bits(0x7fc01234u);
  std::vector<float> b = {1.0f, 1e30f, 1e-30f, INFINITY, 0.0f, 2.0f, -0.0f, 1.0f};
  std::vector<float> f = {1e-30f, 1.0f, 1e30f, INFINITY, nan_payload, -INFINITY, 0.0f, 1.0f};
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Pair p = make_pair(dt, b, f);
    Encoded d = encode(p);
    EXPECT_FALSE(d.info.exact_index.empty()) << dtype_name(dt);
    EXPECT_GE(d.info.nonfinite, 3u) << "Inf, NaN, -Inf are counted for the warning";
    EXPECT_EQ(apply(p, d, 1.0f), p.ft) << dtype_name(dt) << ": must be bit-exact at alpha = 1";
  }
}

TEST(RawCodec, AlphaScalesTheDelta) {
  Pair p = make_pair(DType::F32, {1.0f, 2.0f}, {1.5f, 1.0f});
  Encoded d = encode(p);
  auto out = apply(p, d, 2.0f);
  float v[2];
  std::memcpy(v, out.data(), 8);
  EXPECT_FLOAT_EQ(v[0], 2.0f);
  EXPECT_FLOAT_EQ(v[1], 0.0f);
}

TEST(RawCodec, UnchangedAndReplace) {
  Pair same = make_pair(DType::BF16, {1, 2, 3}, {1, 2, 3});
  Encoded d = encode(same);
  EXPECT_EQ(d.info.mode, RawMode::Unchanged);
  EXPECT_TRUE(d.delta.empty());
  EXPECT_EQ(apply(same, d, 1.0f), same.ft);

  std::vector<int32_t> bi = {1, 2, 3}, fi = {1, 5, 3};
  std::vector<uint8_t> bb(12), fb(12);
  std::memcpy(bb.data(), bi.data(), 12);
  std::memcpy(fb.data(), fi.data(), 12);
  Pair ints;
  ints.base = bb, ints.ft = fb;
  ints.bv = {"i", DType::I32, {3}, ints.base};
  ints.fv = {"i", DType::I32, {3}, ints.ft};
  Encoded r = encode(ints);
  EXPECT_EQ(r.info.mode, RawMode::Replace);
  EXPECT_TRUE(r.delta.empty());
  EXPECT_EQ(apply(ints, r, 0.5f), ints.ft) << "non-float tensors are replaced, never scaled";
}
