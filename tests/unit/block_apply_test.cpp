// Apply's block pass (a stored tensor's BlockApplier, its δ̂ decoded a range at a time) against
// the whole-tensor decode_add, and range decoding against decode_tensor: the same bytes, bit for
// bit, for every codec, dtype and block cut.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "src/codec/codec.h"
#include "src/codec/range_decoder.h"
#include "src/core/error.h"
#include "src/core/half.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {

using testing::make_tensor_pair;
using Fixture = testing::TensorPairFixture;  // a base tensor and its fine-tune

EncodedTensor encode(const Fixture& x, const Recipe& r) {
  const PreparedDelta prep = prepare_delta(r, x.base_view(), x.ft_view());
  TensorPair pair;
  pair.name = "w", pair.base = x.base_view(), pair.ft = x.ft_view(), pair.recipe = &r, pair.prepared = &prep;
  pair.threads = 1;
  return encode_tensor_pair(pair);
}

// The block pass over the cuts `ends` (each block's end), in the order given.
std::vector<uint8_t> apply_in_blocks(BlockApplier& ap, const Fixture& x, float alpha,
                                     const std::vector<std::pair<uint64_t, uint64_t>>& blocks) {
  const size_t es = dtype_size(x.dtype);
  std::vector<uint8_t> out(x.base.size(), 0xAB);
  for (const auto& [first, end] : blocks)
    ap.apply(first, std::span<const uint8_t>(x.base).subspan(first * es, (end - first) * es), alpha,
             std::span<uint8_t>(out).subspan(first * es, (end - first) * es));
  return out;
}

std::vector<std::pair<uint64_t, uint64_t>> cuts(uint64_t n, uint64_t block) {
  std::vector<std::pair<uint64_t, uint64_t>> v;
  for (uint64_t f = 0; f < n; f += block) v.push_back({f, std::min(n, f + block)});
  return v;
}

TEST(BlockApply, SameBytesAsTheWholeTensor) {
  // a matrix whose rows straddle blocks, a vector, odd sizes (quant groups and packed codes cut
  // mid-byte, bitdelta units cut mid-unit)
  const std::vector<std::vector<uint64_t>> shapes = {{48, 700}, {3, 20001}, {37, 101}, {5, 8}};
  for (const char* recipe : {"bitdelta", "bitdelta:scale=row", "bitdelta:scale=group:13", "bitdelta:levels=4",
                             "quant:bits=4", "quant:bits=3,group=64", "quant:bits=2,group=100", "quant:bits=8,group=16",
                             "dare:p=0.9", "topk:density=0.05", "dare:p=0.5>bitdelta", "dare:p=0.7>quant:bits=4",
                             "bitdelta+cherry:frac=0.01", "quant:bits=2+cherry:frac=0.02", "lowrank:rank=4", "raw"})
    for (DType dt : {DType::BF16, DType::F16, DType::F32})
      for (const auto& shape : shapes) {
        SCOPED_TRACE(std::string(recipe) + " " + std::string(dtype_name(dt)) + " " + shape_string(shape));
        const Fixture x = make_tensor_pair(shape, dt, 5);
        const Recipe r = parse_recipe(recipe, 7);
        const EncodedTensor enc = encode(x, r);
        const EncodedSource src(enc.encoded);
        const StoredTensor st{enc.encoded.attrs, src, "test"};
        const uint64_t n = x.base_view().numel();
        for (float alpha : {1.0f, 0.5f, -1.25f}) {
          std::vector<uint8_t> whole(x.base.size());
          decode_add_stored(st, x.base_view(), alpha, whole);
          std::unique_ptr<BlockApplier> ap = block_applier_of_stored(st, x.base_view());
          if (!ap) {  // only raw's own payloads keep the whole path
            EXPECT_EQ(std::string(recipe), "raw");
            continue;
          }
          for (uint64_t block : {uint64_t{1}, uint64_t{7}, uint64_t{4096}, n}) {
            if (block == 1 && n > 5000) continue;  // one entry at a time: the small shapes cover it
            EXPECT_EQ(apply_in_blocks(*ap, x, alpha, cuts(n, block)), whole) << "block " << block;
          }
          auto backwards = cuts(n, 1000);  // blocks in any order
          std::reverse(backwards.begin(), backwards.end());
          EXPECT_EQ(apply_in_blocks(*ap, x, alpha, backwards), whole);
        }
      }
}

TEST(BlockApply, RangesDecodeAsTheWholeTensor) {
  const Fixture x = make_tensor_pair({64, 333}, DType::BF16, 9);
  const uint64_t n = 64 * 333;
  std::mt19937 gen(3);
  for (const char* recipe : {"bitdelta:scale=group:100", "bitdelta:levels=2,scale=row", "quant:bits=3,group=50",
                             "dare:p=0.8>bitdelta", "quant:bits=4+cherry:frac=0.05", "lowrank:rank=3"}) {
    SCOPED_TRACE(recipe);
    const EncodedTensor enc = encode(x, parse_recipe(recipe, 7));
    const EncodedSource src(enc.encoded);
    const std::vector<float> whole = decode_tensor(enc.encoded.attrs, src, x.shape, x.dtype, "test");
    const auto d = load_tensor_decoder(enc.encoded.attrs, src, x.shape, x.dtype, "test");
    for (int k = 0; k < 200; ++k) {
      const uint64_t first = gen() % n, len = std::min<uint64_t>(n - first, gen() % 3000);
      std::vector<float> got(len);
      d->decode(first, len, got.data());
      ASSERT_TRUE(std::equal(got.begin(), got.end(), whole.begin() + static_cast<int64_t>(first)))
          << "range " << first << "+" << len;
    }
  }
}

TEST(BlockApply, UnchangedTensorIsTheBaseBlockByBlock) {
  const Fixture x = make_tensor_pair({10, 77}, DType::BF16, 4);
  Fixture same = x;
  same.ft = same.base;
  const EncodedTensor enc = encode(same, parse_recipe("bitdelta", 7));
  ASSERT_EQ(enc.encoded.attrs["codec"], "unchanged");
  const EncodedSource src(enc.encoded);
  auto ap = block_applier_of_stored({enc.encoded.attrs, src, "test"}, same.base_view());
  ASSERT_TRUE(ap);
  EXPECT_EQ(apply_in_blocks(*ap, same, 0.5f, cuts(770, 100)), same.base);
}

TEST(BlockApply, NonFiniteDecodedBlockIsAnError) {
  const Fixture x = make_tensor_pair({16, 256}, DType::F32, 2);
  EncodedTensor enc = encode(x, parse_recipe("quant:bits=4,group=64", 7));
  // steps near FLT_MAX: lo + code·step overflows to Inf in the third group only
  for (Part& p : enc.encoded.parts)
    if (p.name == "quant.steps") {
      const float big = 3e38f;
      std::memcpy(p.bytes.data() + 2 * 4, &big, 4);
    }
  const EncodedSource src(enc.encoded);
  const StoredTensor st{enc.encoded.attrs, src, "a.h5: tensor 'w'"};
  auto ap = block_applier_of_stored(st, x.base_view());
  ASSERT_TRUE(ap);
  std::vector<uint8_t> out(64 * 4);
  ap->apply(0, std::span<const uint8_t>(x.base).subspan(0, 64 * 4), 1.0f, out);  // the first group is fine
  try {
    ap->apply(128, std::span<const uint8_t>(x.base).subspan(128 * 4, 64 * 4), 1.0f, out);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::AdapterInvalid);
    EXPECT_NE(std::string(e.what()).find("a.h5: tensor 'w'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace deltakit

namespace deltakit {
namespace {

// The sparse stream's compact forms: 64-bit positions past 2^32 entries, values kept as stored
// bf16 bytes and expanded per range — the same floats as 64-bit positions with decoded values.
TEST(BlockApply, SparseRangeDecoderFormsAgree) {
  const uint64_t big = uint64_t{1} << 32;
  const std::vector<uint64_t> pos = {0, 7, 8, 1000, big - 1, big, big + 5, 3 * big};
  std::vector<float> vals;
  std::vector<uint8_t> stored;
  for (size_t i = 0; i < pos.size(); ++i) {
    const uint16_t h = f32_to_bf16(0.25f * static_cast<float>(i + 1) * (i % 2 ? -1.0f : 1.0f));
    vals.push_back(bf16_to_f32(h));
    stored.push_back(static_cast<uint8_t>(h)), stored.push_back(static_cast<uint8_t>(h >> 8));
  }
  const SparseRangeDecoder decoded(pos, vals), kept(pos, stored, DType::BF16);
  for (const auto& [first, n] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 16}, {5, 3}, {999, 2}, {big - 2, 4}, {big + 1, 10}, {3 * big - 1, 2}, {2 * big, 100}}) {
    std::vector<float> a(n, 9.0f), b(n, 9.0f), want(n, 0.0f);
    for (size_t i = 0; i < pos.size(); ++i)
      if (pos[i] >= first && pos[i] < first + n) want[pos[i] - first] = vals[i];
    decoded.decode(first, n, a.data());
    kept.decode(first, n, b.data());
    EXPECT_EQ(a, want) << first;
    EXPECT_EQ(b, want) << first;
  }
  // positions below 2^32 held in 32 bits decode the same
  const std::vector<uint64_t> small(pos.begin(), pos.begin() + 5);
  const SparseRangeDecoder narrow(small, std::vector<float>(vals.begin(), vals.begin() + 5));
  std::vector<float> out(1001);
  narrow.decode(0, out.size(), out.data());
  EXPECT_EQ(out[7], vals[1]);
  EXPECT_EQ(out[1000], vals[3]);
  EXPECT_EQ(out[1], 0.0f);
}

}  // namespace
}  // namespace deltakit
