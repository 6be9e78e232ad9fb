// DARE and top-k against direct references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "src/codec/sparse.h"
#include "src/core/philox.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {
using testing::normal_vector;
using testing::round_trip;

TEST(Dare, PZeroIsExactInFp32) {
  auto d = normal_vector(10000, 1);
  auto rt = round_trip("dare:p=0", d, {100, 100});
  EXPECT_EQ(rt.recon, d);
}

TEST(Dare, KeptShareWithinFourSigma) {
  const uint64_t n = 1 << 20;
  auto d = normal_vector(n, 2);
  for (double p : {0.1, 0.5, 0.9, 0.99}) {
    DareParams prm;
    prm.p = p;
    auto s = dare_select(prm, "w", d, {}, 2);
    const double expect = n * (1 - p), sigma = std::sqrt(n * p * (1 - p));
    EXPECT_NEAR(static_cast<double>(s.positions.size()), expect, 4 * sigma) << "p=" << p;
  }
}

TEST(Dare, MaskIsTheDocumentedPhiloxRule) {
  auto d = normal_vector(5000, 3);
  DareParams prm;
  prm.p = 0.7;
  prm.seed = 11;
  auto s = dare_select(prm, "blk.3.w", d, {}, 1);
  TensorRng rng(11, "blk.3.w");
  const uint64_t thr = TensorRng::drop_threshold(0.7);
  std::vector<uint64_t> want;
  std::vector<float> values;
  const float scale = static_cast<float>(1.0 / (1.0 - 0.7));
  for (uint64_t i = 0; i < d.size(); ++i)
    if (rng.word(i) >= thr) want.push_back(i), values.push_back(d[i] * scale);
  EXPECT_EQ(s.positions, want);
  EXPECT_EQ(s.values, values);
  // every start and length around the 16-entry vector steps
  for (uint64_t block : {5ull, 16ull, 17ull, 33ull})
    EXPECT_EQ(dare_select(prm, "blk.3.w", d, {}, 1, block).positions, want) << block;
}

TEST(Dare, SurvivorsAreRescaledDeltaRoundedToStoredDtype) {
  auto d = normal_vector(20000, 4);
  auto rt = round_trip("dare:p=0.9", d, {100, 200}, DType::BF16);
  const ValueType vt = value_type_for(DType::BF16);
  const float scale = static_cast<float>(1.0 / (1.0 - 0.9));
  uint64_t kept = 0;
  for (uint64_t i = 0; i < d.size(); ++i) {
    if (rt.recon[i] == 0.0f) continue;
    ++kept;
    EXPECT_EQ(rt.recon[i], round_to_value_type(vt, d[i] * scale)) << i;
  }
  EXPECT_GT(kept, 1500u);
  EXPECT_LT(kept, 2500u);
}

TEST(Dare, RescaleGivenAndNone) {
  auto d = normal_vector(4000, 5);
  auto a = round_trip("dare:p=0.5,rescale=1.5", d, {4000});
  auto b = round_trip("dare:p=0.5,rescale=none", d, {4000});
  for (uint64_t i = 0; i < d.size(); ++i) {
    if (a.recon[i] != 0) {
      EXPECT_FLOAT_EQ(a.recon[i], d[i] * 1.5f);
    }
    if (b.recon[i] != 0) {
      EXPECT_FLOAT_EQ(b.recon[i], d[i]);
    }
    EXPECT_EQ(a.recon[i] != 0, b.recon[i] != 0);  // same seed, same mask
  }
}

TEST(Dare, MaskIdenticalAcrossBlockSizesAndThreads) {
  auto d = normal_vector(300001, 6);
  DareParams prm;
  prm.p = 0.9;
  prm.seed = 3;
  auto ref = dare_select(prm, "x", d, {}, 1, 1 << 16);
  for (unsigned threads : {1u, 2u, 3u, 8u})
    for (uint64_t block : {4ull, 1000ull, 4097ull, 1ull << 20}) {
      auto s = dare_select(prm, "x", d, {}, threads, block);
      EXPECT_EQ(s.positions, ref.positions) << threads << " threads, block " << block;
      EXPECT_EQ(s.values, ref.values);
    }
}

TEST(Dare, PositionsCodingPicksTheSmaller) {
  auto d = normal_vector(100000, 7);
  auto dense = round_trip("dare:p=0.5", d, {100000});
  auto sparse = round_trip("dare:p=0.999", d, {100000});
  EXPECT_EQ(dense.enc.attrs["dare.positions_coding"], "bitmap");
  EXPECT_EQ(sparse.enc.attrs["dare.positions_coding"], "varint");
}

TEST(Topk, KeepsTheLargestMagnitudes) {
  auto d = normal_vector(10000, 8);
  auto rt = round_trip("topk:density=0.1", d, {100, 100});
  std::vector<float> mags;
  for (float x : d) mags.push_back(std::fabs(x));
  std::sort(mags.rbegin(), mags.rend());
  const float cutoff = mags[999];
  uint64_t kept = 0;
  for (uint64_t i = 0; i < d.size(); ++i) {
    if (rt.recon[i] != 0.0f) {
      ++kept;
      EXPECT_EQ(rt.recon[i], d[i]);
      EXPECT_GE(std::fabs(d[i]), cutoff);
    } else {
      EXPECT_LE(std::fabs(d[i]), cutoff);
    }
  }
  EXPECT_EQ(kept, 1000u);  // floor(0.1 * 10000)
}

TEST(Topk, TiesGoToTheLowerIndex) {
  std::vector<float> d(10, 1.0f);
  TopkParams prm;
  prm.density = 0.3;
  auto s = topk_select(prm, d, {});
  EXPECT_EQ(s.positions, (std::vector<uint64_t>{0, 1, 2}));
}

}  // namespace
}  // namespace deltakit
