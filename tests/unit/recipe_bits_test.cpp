// Recipe grammar (canonical forms, refusals) and the shared bit/position coding.
#include <gtest/gtest.h>

#include "src/codec/bits.h"
#include "src/codec/recipe.h"
#include "src/core/error.h"

namespace deltakit {
namespace {

TEST(Recipe, CanonicalFormsSpellEveryParameter) {
  EXPECT_EQ(parse_recipe("raw").canonical(), "raw");
  EXPECT_EQ(parse_recipe("dare", 5).canonical(), "dare:p=0.9,rescale=auto,seed=5");
  EXPECT_EQ(parse_recipe("bitdelta").canonical(), "bitdelta:scale=matrix,levels=1");
  EXPECT_EQ(
      parse_recipe(" dare:p=0.5 > bitdelta:scale=row + cherry:frac=0.005 ").canonical(),
      "dare:p=0.5,rescale=auto,seed=0 > bitdelta:scale=row,levels=1 + cherry:frac=0.005,per=row,importance=magnitude");
  EXPECT_EQ(parse_recipe("bitdelta:scale=group:64,levels=4").canonical(), "bitdelta:scale=group:64,levels=4");
  EXPECT_EQ(parse_recipe("quant:bits=3").canonical(), "quant:bits=3,group=128");
  EXPECT_EQ(parse_recipe("lowrank:rank=16").canonical(), "lowrank:rank=16,seed=0");
  EXPECT_EQ(parse_recipe("quant + cherry:importance=fisher:/x/f.safetensors").canonical(),
            "quant:bits=4,group=128 + cherry:frac=0.01,per=row,importance=fisher:/x/f.safetensors");
  EXPECT_EQ(parse_recipe("dare:rescale=none").canonical(), "dare:p=0.9,rescale=1,seed=0");
  // the canonical text parses back to itself
  for (const char* r :
       {"dare:p=0.25,rescale=2.5,seed=9 > quant:bits=2,group=32 + cherry:frac=0.1,per=tensor,importance=magnitude",
        "topk:density=0.05", "lowrank:energy=0.9,seed=3", "topk:density=0.1,scope=model",
        "bitdelta + cherry:frac=0.001,scope=model,importance=magnitude"})
    EXPECT_EQ(parse_recipe(parse_recipe(r).canonical()).canonical(), parse_recipe(r).canonical());
}

TEST(Recipe, RefusesNonsenseWithAClearMessage) {
  struct Bad {
    const char* recipe;
    const char* says;
  } cases[] = {
      {"", "no codec name"},
      {"topk:scope=galaxy", "scope=galaxy is not tensor or model"},
      {"bitdelta + cherry:per=row,scope=model", "per= and scope=model conflict"},
      {"topk:density=0.1,scope=model + cherry", "topk scope=model cannot be combined with cherry"},
      {"zip", "unknown codec"},
      {"dare:p=1.5", "out of range"},
      {"dare:q=0.5", "unknown parameter \"q\""},
      {"dare:p", "not key=value"},
      {"dare:p=0.5,p=0.6", "given twice"},
      {"quant:bits=5", "bits must be 2, 3, 4 or 8"},
      {"bitdelta:levels=3", "power of two"},
      {"bitdelta:scale=col", "not matrix, row or group:G"},
      {"lowrank", "exactly one of rank=R or energy=E"},
      {"lowrank:rank=4,energy=0.5", "exactly one of rank=R or energy=E"},
      {"raw > bitdelta", "raw stands alone"},
      {"bitdelta > dare", "bitdelta cannot come first"},
      {"dare > topk", "topk cannot code a sparsifier's values"},
      {"dare > quant > bitdelta", "at most two stages"},
      {"lowrank:rank=2 > quant", "lowrank stands alone"},
      {"cherry:frac=0.1", "cherry is a modifier"},
      {"bitdelta + quant", "only cherry can follow"},
      {"raw + cherry", "raw is exact"},
      {"bitdelta + cherry:frac=0", "out of range"},
      {"bitdelta + cherry:importance=fisher:", "names no file"},
      {"bitdelta + cherry + cherry", "at most one"},
  };
  for (const auto& c : cases) {
    try {
      parse_recipe(c.recipe);
      ADD_FAILURE() << "accepted \"" << c.recipe << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Usage);
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << c.recipe << " -> " << e.what();
    }
  }
}

TEST(Bits, PackedFieldsRoundTrip) {
  for (unsigned w = 1; w <= 16; ++w)
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{1001}}) {
      std::vector<uint16_t> f(n);
      for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<uint16_t>((i * 2654435761u) & ((1u << w) - 1));
      auto packed = pack_fields(f, w);
      EXPECT_EQ(packed.size(), packed_bytes(f.size(), w));
      // the layout, bit by bit: field i's bit b at bit i * w + b of the stream, LSB first
      std::vector<uint8_t> want(packed_bytes(n, w), 0);
      for (size_t i = 0; i < n; ++i)
        for (unsigned b = 0; b < w; ++b)
          if (f[i] >> b & 1) want[(i * w + b) / 8] |= static_cast<uint8_t>(1u << ((i * w + b) % 8));
      ASSERT_EQ(packed, want) << "width " << w << ", " << n << " fields";
      for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(packed_field(packed.data(), i, w), f[i]) << w;
    }
}

TEST(Bits, PositionsRoundTripAndRefuseMalformedStreams) {
  std::vector<uint64_t> sparse = {0, 5, 1000, 1001, 99999};
  auto c = encode_positions(sparse, 100000);
  EXPECT_EQ(c.coding, "varint");
  EXPECT_EQ(decode_positions(c.coding, c.bytes, 100000, sparse.size(), "t"), sparse);
  std::vector<uint64_t> dense;
  for (uint64_t i = 0; i < 1000; i += 2) dense.push_back(i);
  auto b = encode_positions(dense, 1000);
  EXPECT_EQ(b.coding, "bitmap");
  EXPECT_EQ(decode_positions(b.coding, b.bytes, 1000, dense.size(), "t"), dense);
  auto refuses = [](const std::string& coding, std::vector<uint8_t> bytes, uint64_t n, uint64_t count) {
    EXPECT_THROW(decode_positions(coding, bytes, n, count, "t"), Error) << coding;
  };
  refuses("varint", {0x80}, 10, 1);                                  // ends inside a number
  refuses("varint", {0x05, 0x05}, 10, 2);                            // second position 11 >= n
  refuses("varint", {0x01}, 10, 2);                                  // fewer than declared
  refuses("varint", std::vector<uint8_t>(11, 0xff), UINT64_MAX, 1);  // overlong
  refuses("bitmap", {0xff}, 4, 4);                                   // bits past the end
  refuses("bitmap", {0x01, 0x00}, 8, 1);                             // wrong size
  refuses("rle", {}, 8, 0);
}

// Runs of one-byte gaps decode eight at a time: the same positions as one by one, whatever
// mixes with longer gaps, and the same refusals inside such a run.
TEST(Bits, VarintRunsOfShortGapsDecodeAsOneByOne) {
  const uint64_t n = 3'000'000;
  std::vector<uint64_t> pos;
  uint64_t x = 88172645463325252ull, p = 0;
  while (true) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    p += 1 + (x % 16 == 0 ? x % 5000 : x % 20);  // mostly one byte, some two
    if (p >= n) break;
    pos.push_back(p);
  }
  auto c = encode_positions(pos, n);
  ASSERT_EQ(c.coding, "varint");
  EXPECT_EQ(decode_positions(c.coding, c.bytes, n, pos.size(), "t"), pos);
  std::vector<uint32_t> pos32(pos.begin(), pos.end());
  EXPECT_EQ(decode_positions32(c.coding, c.bytes, n, pos.size(), "t"), pos32);
  const std::vector<uint8_t> ones(16, 0x00);  // positions 0, 1, ..., 15
  EXPECT_EQ(decode_positions("varint", ones, 16, 16, "t").back(), 15u);
  EXPECT_THROW(decode_positions("varint", ones, 15, 16, "t"), Error);  // the last one past the end
  EXPECT_THROW(decode_positions("varint", ones, 16, 12, "t"), Error);  // more than declared
  EXPECT_THROW(decode_positions("varint", ones, 16, 17, "t"), Error);  // fewer than declared
}

}  // namespace
}  // namespace deltakit
