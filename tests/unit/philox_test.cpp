// Philox4x32-10 against Random123's published known-answer vectors, and the keyed stream's
// independence from how it is chunked.
#include "src/core/philox.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace deltakit;

TEST(Philox, KnownAnswerVectors) {
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (Philox4x32Counter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (Philox4x32Counter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (Philox4x32Counter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Philox, Fnv1a64) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
}

TEST(Philox, StreamIsTheDocumentedFunction) {
  // word(i) = philox(counter=(lo(i/4), hi(i/4), lo(h), hi(h)), key=(lo(seed), hi(seed)))[i % 4]
  const uint64_t seed = 0x123456789abcdefull;
  const std::string name = "model.layers.0.mlp.up_proj.weight";
  TensorRng rng(seed, name);
  uint64_t h = fnv1a64(name);
  for (uint64_t i : {0ull, 1ull, 5ull, 1000003ull, (1ull << 34) + 3}) {
    uint64_t b = i / 4;
    auto w = philox4x32_10({uint32_t(b), uint32_t(b >> 32), uint32_t(h), uint32_t(h >> 32)},
                           {uint32_t(seed), uint32_t(seed >> 32)});
    EXPECT_EQ(rng.word(i), w[i % 4]) << i;
  }
}

TEST(Philox, PinnedWordsSharedWithTheNumpyReproduction) {
  // tests/cli/philox_numpy.py asserts the same six words from its own implementation
  const uint32_t want[6] = {0xc72cce0d, 0x0f0f744a, 0x74f246b2, 0x8169ac02, 0xafe56328, 0xfba72a50};
  TensorRng rng(42, "t");
  for (int i = 0; i < 6; ++i) EXPECT_EQ(rng.word(i), want[i]) << i;
}

TEST(Philox, ChunkingDoesNotChangeTheStream) {
  TensorRng rng(42, "t");
  std::vector<uint32_t> whole(1000), piece(1000);
  rng.words(0, 1000, whole.data());
  for (uint64_t first = 0; first < 1000;) {  // odd chunk sizes straddle the 4-word blocks
    uint64_t n = std::min<uint64_t>(7 + first % 5, 1000 - first);
    rng.words(first, n, piece.data() + first);
    first += n;
  }
  EXPECT_EQ(whole, piece);
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_EQ(whole[i], rng.word(i));
  EXPECT_NE(TensorRng(42, "u").word(0), rng.word(0)) << "names key different streams";
  EXPECT_NE(TensorRng(43, "t").word(0), rng.word(0)) << "seeds key different streams";
}

TEST(Philox, WordsAreTheElementStreamAcrossTheBlockIndexHighWord) {
  // words() takes whole Philox blocks at once; here also where the block index's high word changes
  TensorRng rng(0xfeedfacecafebeefull, "w");
  for (uint64_t first : {0ull, 3ull, (1ull << 34) - 130, (1ull << 34) - 1}) {
    std::vector<uint32_t> got(517);
    rng.words(first, got.size(), got.data());
    for (uint64_t k = 0; k < got.size(); ++k) ASSERT_EQ(got[k], rng.word(first + k)) << first + k;
  }
}

TEST(Philox, BernoulliThresholdsAndRates) {
  EXPECT_EQ(TensorRng::drop_threshold(0.0), 0u);
  EXPECT_EQ(TensorRng::drop_threshold(1.0), 1ull << 32);
  EXPECT_EQ(TensorRng::drop_threshold(0.5), 1ull << 31);
  TensorRng rng(1, "rate");
  const uint64_t n = 1'000'000, thr = TensorRng::drop_threshold(0.9);
  uint64_t dropped = 0;
  for (uint64_t i = 0; i < n; ++i) dropped += rng.word(i) < thr;
  double sigma = std::sqrt(n * 0.9 * 0.1);
  EXPECT_LT(std::fabs(double(dropped) - 0.9 * n), 4 * sigma);
}
