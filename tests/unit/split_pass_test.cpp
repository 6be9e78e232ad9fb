// A tensor split into row blocks (src/codec/split_pass.h): every block's pass, through its journal
// bytes and back, joined in row order, must store the unsplit fused pass's attributes and parts
// byte for byte and report the same error bits, for every split the granularity allows; an
// unchanged block, an unchanged tensor and a NaN in one block behave as in the unsplit pass; a
// damaged block file is a clean error.
#include "src/codec/split_pass.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "src/codec/codec.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {
using testing::make_tensor_pair;

EncodedTensor encode_with(const Recipe& r, const testing::TensorPairFixture& p, const PreparedDelta& prep) {
  TensorPair pair;
  pair.name = "w", pair.base = p.base_view(), pair.ft = p.ft_view(), pair.recipe = &r, pair.prepared = &prep;
  return encode_tensor_pair(pair);
}

void expect_same(const EncodedTensor& got, const EncodedTensor& want) {
  EXPECT_EQ(got.encoded.attrs.dump(), want.encoded.attrs.dump());
  EXPECT_EQ(got.stats.codec, want.stats.codec);
  EXPECT_EQ(got.stats.rel_error, want.stats.rel_error);  // the same bits: the same sums in the same order
  EXPECT_EQ(got.stats.delta_sq, want.stats.delta_sq);
  ASSERT_EQ(got.encoded.parts.size(), want.encoded.parts.size());
  for (size_t k = 0; k < want.encoded.parts.size(); ++k) {
    EXPECT_EQ(got.encoded.parts[k].name, want.encoded.parts[k].name);
    EXPECT_EQ(got.encoded.parts[k].dims, want.encoded.parts[k].dims);
    EXPECT_EQ(got.encoded.parts[k].bytes, want.encoded.parts[k].bytes) << want.encoded.parts[k].name;
  }
}

// The blocks' passes, each through its bytes, joined in row order.
PreparedDelta split_and_join(const Recipe& r, const testing::TensorPairFixture& p,
                             const std::vector<uint64_t>& starts) {
  const uint64_t cols = p.shape.back();
  BlockJoiner joined(r, p.ft_view());
  for (size_t k = 0; k + 1 < starts.size(); ++k) {
    const BlockPass b = block_pass(r, p.base_view(), p.ft_view(), starts[k], starts[k + 1]);
    joined.add(block_pass_from_bytes(block_pass_bytes(b), r, starts[k + 1] - starts[k], cols, "block"));
  }
  return joined.finish();
}

TEST(SplitPass, SameBytesAsTheUnsplitPass) {
  const std::vector<const char*> recipes = {
      "bitdelta",     "bitdelta:scale=row",    "bitdelta:scale=group:13", "bitdelta:scale=group:256",
      "quant:bits=4", "quant:bits=3,group=64", "quant:bits=8,group=96"};
  // rows of 512 (a matrix unit splits every 32 rows), of 700 (odd granularities), of 96
  const std::vector<std::vector<uint64_t>> shapes = {{200, 512}, {130, 700}, {1100, 96}, {3, 40, 128}};
  for (const char* text : recipes) {
    int splits = 0;
    for (DType dt : {DType::BF16, DType::F32})
      for (const auto& shape : shapes) {
        const Recipe r = parse_recipe(text, 7);
        testing::TensorPairFixture p = make_tensor_pair(shape, dt, 5);
        const uint64_t cols = shape.back(), rows = p.base.size() / dtype_size(dt) / cols;
        const uint64_t g = split_rows(r, cols);
        SCOPED_TRACE(std::string(text) + " " + std::string(dtype_name(dt)) + " rows " + std::to_string(rows) + " x " +
                     std::to_string(cols) + " granularity " + std::to_string(g));
        ASSERT_GT(g, 0u);
        // some rows unchanged: a block of zeros beside blocks of δ
        const uint64_t es = dtype_size(dt);
        if (3 * g <= rows)
          std::copy(p.base.begin(), p.base.begin() + static_cast<std::ptrdiff_t>(g * cols * es), p.ft.begin());
        const EncodedTensor want = encode_with(r, p, prepare_delta(r, p.base_view(), p.ft_view()));
        for (uint64_t block_rows : {g, 2 * g, 3 * g + 1, rows / 2, rows}) {
          const std::vector<uint64_t> starts = split_blocks(r, rows, cols, block_rows);
          for (size_t k = 1; k + 1 < starts.size(); ++k) ASSERT_EQ(starts[k] % g, 0u);
          splits += starts.size() > 2;
          const PreparedDelta joined = split_and_join(r, p, starts);
          ASSERT_TRUE(joined.stream);
          expect_same(encode_with(r, p, joined), want);
        }
      }
    EXPECT_GT(splits, 0) << text << ": no shape was split";
  }
}

TEST(SplitPass, UnchangedAndNonFiniteAsUnsplit) {
  for (const char* text : {"bitdelta", "quant:bits=4"}) {
    const Recipe r = parse_recipe(text, 7);
    testing::TensorPairFixture p = make_tensor_pair({256, 512}, DType::BF16, 3);
    const std::vector<uint64_t> starts = split_blocks(r, 256, 512, 64);
    ASSERT_EQ(starts.size(), 5u);
    // unchanged: no stream, stored as unchanged
    testing::TensorPairFixture same = p;
    same.ft = same.base;
    const PreparedDelta u = split_and_join(r, same, starts);
    EXPECT_FALSE(u.changed);
    EXPECT_EQ(encode_with(r, same, u).stats.codec,
              encode_with(r, same, prepare_delta(r, same.base_view(), same.ft_view())).stats.codec);
    // a NaN in the third block: raw stands in, as unsplit
    const uint16_t nan = 0x7fc0;
    std::memcpy(p.ft.data() + (130 * 512 + 7) * 2, &nan, 2);
    const PreparedDelta n = split_and_join(r, p, starts);
    EXPECT_EQ(n.fallback, kNonFiniteDelta);
    EXPECT_FALSE(n.stream);
    expect_same(encode_with(r, p, n), encode_with(r, p, prepare_delta(r, p.base_view(), p.ft_view())));
  }
}

TEST(SplitPass, DamagedBlockBytesAreAnError) {
  const Recipe r = parse_recipe("bitdelta", 7);
  const testing::TensorPairFixture p = make_tensor_pair({64, 512}, DType::BF16, 3);
  const std::vector<uint8_t> good = block_pass_bytes(block_pass(r, p.base_view(), p.ft_view(), 0, 32));
  EXPECT_NO_THROW(block_pass_from_bytes(good, r, 32, 512, "b"));
  auto fails = [&](std::vector<uint8_t> bad, const char* what) {
    try {
      block_pass_from_bytes(bad, r, 32, 512, "t0000001.b0001.blk");
      ADD_FAILURE() << "accepted: " << what;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("t0000001.b0001.blk"), std::string::npos) << e.what();
    }
  };
  fails({good.begin(), good.end() - 1}, "truncated");
  fails({good.begin(), good.begin() + 20}, "cut in a count");
  std::vector<uint8_t> extra = good;
  extra.push_back(0);
  fails(extra, "a trailing byte");
  std::vector<uint8_t> magic = good;
  magic[0] = 'X';
  fails(magic, "magic");
  // the block read as another shape: its counts no longer match
  EXPECT_THROW(block_pass_from_bytes(good, r, 16, 512, "b"), Error);
  std::vector<uint8_t> flag = good;
  flag[8] = 2;
  fails(flag, "a flag that is not 0 or 1");
}

}  // namespace
}  // namespace deltakit
