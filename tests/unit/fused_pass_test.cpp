// The fused compress pass (prepare_delta's statistics pass + encode_streamed, no tensor-sized δ)
// against the whole-δ path: the same attributes, parts and error sums, bit for bit.
#include <gtest/gtest.h>

#include <cmath>

#include "src/codec/codec.h"
#include "src/codec/error_norms.h"
#include "src/core/half.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {
using testing::normal_vector;

struct Pair {
  std::vector<uint8_t> base, ft;
  std::vector<float> delta;  // ft − base as prepare_delta computes it
};

Pair make_pair(uint64_t n, DType dt, uint32_t seed) {
  const auto b = normal_vector(n, seed, 1.0f), d = normal_vector(n, seed + 1, 0.01f);
  Pair p;
  p.base.resize(n * dtype_size(dt)), p.ft.resize(n * dtype_size(dt));
  std::vector<float> f(n);
  for (uint64_t i = 0; i < n; ++i) f[i] = b[i] + d[i];
  encode_from_f32(dt, b, p.base);
  encode_from_f32(dt, f, p.ft);
  std::vector<float> db(n), df(n);
  decode_to_f32(dt, p.base, 0, db);
  decode_to_f32(dt, p.ft, 0, df);
  p.delta.resize(n);
  for (uint64_t i = 0; i < n; ++i) p.delta[i] = df[i] - db[i];
  return p;
}

// The error's order (src/codec/error_norms.h) whatever the ranges a coder adds: pieces of
// kPiece entries, 8 lanes each, lanes then pieces added in order — as a device computes it.
TEST(ErrorLanes, RangesAndPiecesGiveOneOrder) {
  for (uint64_t n : {uint64_t{0}, uint64_t{5}, ErrorLanes::kPiece, 3 * ErrorLanes::kPiece + 1001}) {
    SCOPED_TRACE(n);
    const auto delta = normal_vector(n, 3, 1.0f), recon = normal_vector(n, 4, 1.0f);
    ErrorLanes whole;
    whole.add(delta, 0, n, recon.data());
    // the piece formula written out, one entry at a time
    std::vector<double> err, sq;
    for (uint64_t first = 0; first < n; first += ErrorLanes::kPiece) {
      double le[8] = {}, ls[8] = {};
      for (uint64_t i = first; i < std::min(n, first + ErrorLanes::kPiece); ++i) {
        const double d = delta[i], x = d - static_cast<double>(recon[i]);
        le[i % 8] += x * x, ls[i % 8] += d * d;
      }
      double e = 0, q = 0;
      for (int l = 0; l < 8; ++l) e += le[l], q += ls[l];
      err.push_back(e), sq.push_back(q);
    }
    const ErrorNorms want = ErrorLanes::from_pieces(err, sq), got = whole.sums();
    EXPECT_EQ(got.err_sq, want.err_sq);
    EXPECT_EQ(got.delta_sq, want.delta_sq);
    // ranges of odd sizes across piece boundaries
    for (uint64_t step : {uint64_t{1}, uint64_t{7}, uint64_t{2048}, uint64_t{16383}, uint64_t{20000}}) {
      ErrorLanes split;
      for (uint64_t b = 0; b < n; b += step) split.add(delta, b, std::min(n, b + step), recon.data() + b);
      EXPECT_EQ(split.sums().err_sq, want.err_sq) << step;
      EXPECT_EQ(split.sums().delta_sq, want.delta_sq) << step;
    }
  }
}

TEST(FusedPass, SameEncodingAsTheWholeDelta) {
  // shapes: many blocks of one matrix unit, rows longer than a block (unit not on a byte), rows
  // shorter than a block, odd sizes, a vector
  const std::vector<std::vector<uint64_t>> shapes = {{96, 700}, {3, 40001}, {37, 101}, {50000}, {5, 8}};
  for (const char* recipe :
       {"bitdelta", "bitdelta:scale=row", "bitdelta:scale=group:13", "bitdelta:scale=group:20000", "quant:bits=4",
        "quant:bits=3,group=64", "quant:bits=2,group=100", "quant:bits=8,group=16384", "dare:p=0.9",
        "dare:p=0.3,seed=5", "dare:p=0.999", "dare:p=0.5,rescale=none"})
    for (DType dt : {DType::BF16, DType::F16, DType::F32})
      for (const auto& shape : shapes) {
        uint64_t n = 1;
        for (uint64_t x : shape) n *= x;
        SCOPED_TRACE(std::string(recipe) + " " + std::string(dtype_name(dt)) + " n=" + std::to_string(n));
        const Pair p = make_pair(n, dt, 11);
        const TensorView base{"w", dt, shape, p.base}, ft{"w", dt, shape, p.ft};
        const Recipe r = parse_recipe(recipe, 7);
        const PreparedDelta prep = prepare_delta(r, base, ft);
        ASSERT_TRUE(prep.stream);
        EXPECT_TRUE(prep.delta.empty());  // nothing tensor-sized held
        TensorPair pair;
        pair.name = "w", pair.base = base, pair.ft = ft, pair.recipe = &r, pair.prepared = &prep;
        const EncodedTensor fused = encode_tensor_pair(pair);

        const Encoded whole = encode_tensor(r, TensorDelta{"w", dt, shape, p.delta, {}, 1});
        EXPECT_EQ(fused.encoded.attrs.dump(), whole.attrs.dump());
        ASSERT_EQ(fused.encoded.parts.size(), whole.parts.size());
        for (size_t k = 0; k < whole.parts.size(); ++k) {
          EXPECT_EQ(fused.encoded.parts[k].name, whole.parts[k].name);
          EXPECT_EQ(fused.encoded.parts[k].dims, whole.parts[k].dims);
          EXPECT_EQ(fused.encoded.parts[k].bytes, whole.parts[k].bytes) << whole.parts[k].name;
        }
        const ErrorNorms ref =
            error_norms(p.delta, decode_tensor(whole.attrs, EncodedSource(whole), shape, dt, "test"));
        EXPECT_EQ(fused.encoded.err_sq, whole.err_sq);  // one implementation, the same sums
        EXPECT_EQ(fused.encoded.delta_sq, whole.delta_sq);
        if (!std::string(recipe).starts_with("bitdelta")) {  // measured against the decoded values
          EXPECT_EQ(fused.encoded.err_sq, ref.err_sq);
          EXPECT_EQ(fused.stats.delta_sq, ref.delta_sq);
        } else {  // the closed form, with Σ|δ| summed in float runs as the scale is: ~1e-8 relative
          EXPECT_NEAR(fused.encoded.err_sq, ref.err_sq, 1e-6 * ref.err_sq);
          EXPECT_NEAR(fused.stats.delta_sq, ref.delta_sq, 1e-12 * ref.delta_sq);
        }
      }
}

TEST(FusedPass, NonFiniteDeltaFallsBackToRawAndOtherRecipesKeepTheWholeDelta) {
  Pair p = make_pair(64 * 300, DType::F32, 3);
  float inf = INFINITY;
  std::memcpy(p.ft.data() + 4 * 17000, &inf, 4);  // an Inf in the second block (16384 per block)
  const TensorView base{"w", DType::F32, {64, 300}, p.base}, ft{"w", DType::F32, {64, 300}, p.ft};
  const Recipe bd = parse_recipe("bitdelta", 7);
  const PreparedDelta prep = prepare_delta(bd, base, ft);
  EXPECT_FALSE(prep.stream);
  EXPECT_NE(prep.fallback.find("NaN/Inf"), std::string::npos);
  for (const char* other :
       {"bitdelta:levels=2", "bitdelta + cherry:frac=0.01,per=tensor", "quant:bits=4 + cherry:frac=0.01",
        "dare:p=0.5>bitdelta", "quant:bits=3,group=50", "quant:bits=4,group=32768"}) {
    const Pair q = make_pair(64 * 300, DType::F32, 4);
    const TensorView b2{"w", DType::F32, {64, 300}, q.base}, f2{"w", DType::F32, {64, 300}, q.ft};
    const Recipe r = parse_recipe(other, 7);
    const PreparedDelta pr = prepare_delta(r, b2, f2);
    EXPECT_FALSE(pr.stream) << other;
    EXPECT_EQ(pr.delta.size(), q.delta.size()) << other;
  }
}

}  // namespace
}  // namespace deltakit
