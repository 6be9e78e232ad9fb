// Serving's products (src/codec/delta_product.h) against decoding: for every codec, the product
// a stored tensor gives must equal x·δ̂ᵀ with δ̂ what decode_tensor returns, its rows must be
// δ̂'s rows, and each output row must be the same bits whatever else is in the batch.
#include <gtest/gtest.h>

#include <cstring>

#include "src/codec/codec.h"
#include "src/codec/sign_sums.h"
#include "src/core/error.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {

using testing::normal_vector;

struct ProductCase {
  const char* recipe;
  uint64_t rows, cols;
};

class ProductTest : public ::testing::TestWithParam<ProductCase> {};

TEST_P(ProductTest, EqualsDecodedTimesInput) {
  const ProductCase pc = GetParam();
  const std::vector<uint64_t> shape{pc.rows, pc.cols};
  const std::vector<float> delta = normal_vector(pc.rows * pc.cols, 11);
  auto rt = testing::round_trip(pc.recipe, delta, shape);
  const EncodedSource src(rt.enc);
  auto p = load_tensor_product(rt.enc.attrs, src, shape, DType::F32, "test");
  ASSERT_TRUE(p);
  // rows: the decoded δ̂ (cherries through a correction: equal to rounding)
  std::vector<float> row(pc.cols);
  double worst_row = 0, scale = 0;
  for (uint64_t r = 0; r < pc.rows; ++r) {
    p->decode_row(r, row.data());
    for (uint64_t c = 0; c < pc.cols; ++c) {
      worst_row = std::max(worst_row, double(std::fabs(row[c] - rt.recon[r * pc.cols + c])));
      scale = std::max(scale, double(std::fabs(rt.recon[r * pc.cols + c])));
    }
  }
  EXPECT_LE(worst_row, 1e-6 * std::max(scale, 1e-3)) << pc.recipe;
  // products: against a double-precision x·δ̂ᵀ
  const int64_t M = 80;  // enough work that the products take their threaded paths
  const std::vector<float> x = normal_vector(M * pc.cols, 12, 1.0f);
  std::vector<float> y(M * pc.rows, 0.25f);
  p->multiply_add(x.data(), M, y.data(), 1);
  for (int64_t m = 0; m < M; ++m)
    for (uint64_t r = 0; r < pc.rows; ++r) {
      double want = 0.25, mag = 0;
      for (uint64_t c = 0; c < pc.cols; ++c) {
        want += double(rt.recon[r * pc.cols + c]) * x[m * pc.cols + c];
        mag += std::fabs(double(rt.recon[r * pc.cols + c]) * x[m * pc.cols + c]);
      }
      EXPECT_NEAR(y[m * pc.rows + r], want, 1e-5 * mag + 1e-7) << pc.recipe << " row " << r << " input " << m;
    }
  // batch invariance: input 3 alone, and with 2 threads, gives the same bits as in the batch
  for (unsigned threads : {1u, 2u}) {
    std::vector<float> one(pc.rows, 0.25f);
    p->multiply_add(x.data() + 3 * pc.cols, 1, one.data(), threads);
    EXPECT_EQ(0, std::memcmp(one.data(), y.data() + 3 * pc.rows, pc.rows * 4)) << pc.recipe << " threads " << threads;
  }
  std::vector<float> y2(M * pc.rows, 0.25f);
  p->multiply_add(x.data(), M, y2.data(), 2);
  EXPECT_EQ(0, std::memcmp(y2.data(), y.data(), y.size() * 4)) << pc.recipe;
  // a machine without AVX-512 (the plain loops) gives the same bits
  use_portable_sign_sums(true);
  std::vector<float> y3(M * pc.rows, 0.25f);
  p->multiply_add(x.data(), M, y3.data(), 1);
  use_portable_sign_sums(false);
  EXPECT_EQ(0, std::memcmp(y3.data(), y.data(), y.size() * 4)) << pc.recipe << ": the portable loops differ";
  EXPECT_GT(p->bytes(), 0u);
}

std::string case_name(const ::testing::TestParamInfo<ProductCase>& info) {
  std::string s;
  for (const char* c = info.param.recipe; *c; ++c) s += std::isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
  return s + "_" + std::to_string(info.param.rows) + "x" + std::to_string(info.param.cols);
}

INSTANTIATE_TEST_SUITE_P(
    EveryCodec, ProductTest,
    ::testing::Values(ProductCase{"bitdelta", 48, 64}, ProductCase{"bitdelta", 272, 512},
                      ProductCase{"quant:bits=4", 520, 256}, ProductCase{"bitdelta:scale=row", 40, 37},
                      ProductCase{"bitdelta:scale=group:24", 33, 64}, ProductCase{"bitdelta:scale=group:100", 30, 64},
                      ProductCase{"bitdelta:scale=group:16", 20, 64}, ProductCase{"bitdelta:scale=group:10", 17, 30},
                      ProductCase{"bitdelta:scale=row", 19, 36}, ProductCase{"bitdelta:levels=4", 32, 48},
                      ProductCase{"quant:bits=4", 48, 64}, ProductCase{"quant:bits=8,group=50", 21, 40},
                      ProductCase{"quant:bits=3", 16, 72}, ProductCase{"dare:p=0.9", 64, 64},
                      ProductCase{"topk:density=0.05", 40, 50}, ProductCase{"dare:p=0.5 > bitdelta:scale=row", 32, 64},
                      ProductCase{"topk > quant:bits=4", 32, 64}, ProductCase{"lowrank:rank=4", 48, 40},
                      ProductCase{"bitdelta + cherry:frac=0.02", 48, 64},
                      ProductCase{"quant:bits=2 + cherry:frac=0.05,per=tensor", 24, 64},
                      ProductCase{"lowrank:rank=2 + cherry:frac=0.01", 40, 48}),
    case_name);

// Raw through the codec interface: the product is what apply writes minus the base.
TEST(ProductRaw, IsTheAppliedDelta) {
  const uint64_t rows = 8, cols = 16, n = rows * cols;
  std::vector<float> b = normal_vector(n, 3, 1.0f), f = b;
  for (uint64_t i = 0; i < n; i += 3) f[i] += 0.01f * static_cast<float>(i % 7);
  auto bytes = [](const std::vector<float>& v) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(v.data()), v.size() * 4);
  };
  TensorView base{"w", DType::F32, {rows, cols}, bytes(b)}, ft{"w", DType::F32, {rows, cols}, bytes(f)};
  Recipe raw = parse_recipe("raw");
  PreparedDelta prep = prepare_delta(raw, base, ft);
  TensorPair pair;
  pair.name = "w", pair.base = base, pair.ft = ft, pair.recipe = &raw, pair.prepared = &prep;
  EncodedTensor enc = encode_tensor_pair(pair);
  const EncodedSource src(enc.encoded);
  auto p = product_of_stored({enc.encoded.attrs, src, "test"}, base);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->form(), "dense");
  std::vector<float> row(cols);
  for (uint64_t r = 0; r < rows; ++r) {
    p->decode_row(r, row.data());
    for (uint64_t c = 0; c < cols; ++c) EXPECT_EQ(row[c], f[r * cols + c] - b[r * cols + c]);
  }
  // an unchanged tensor has no product
  PreparedDelta same = prepare_delta(raw, base, base);
  TensorPair pair2 = pair;
  pair2.ft = base, pair2.prepared = &same;
  EncodedTensor enc2 = encode_tensor_pair(pair2);
  const EncodedSource src2(enc2.encoded);
  EXPECT_FALSE(product_of_stored({enc2.encoded.attrs, src2, "test"}, base));
}

// A stored part the product does not read is an error, as it is for apply.
TEST(ProductRaw, RefusesUnreadParts) {
  const std::vector<uint64_t> shape{8, 16};
  auto rt = testing::round_trip("bitdelta", normal_vector(128, 5), shape);
  rt.enc.add({"bitdelta.extra", PartKind::U8, {4}, {1, 2, 3, 4}, ""});
  const EncodedSource src(rt.enc);
  std::vector<float> b(128, 0.0f);
  TensorView base{"w", DType::F32, shape, {reinterpret_cast<const uint8_t*>(b.data()), 512}};
  EXPECT_THROW(product_of_stored({rt.enc.attrs, src, "test"}, base), Error);
}

}  // namespace
}  // namespace deltakit
