// BitDelta and quantization against closed forms and direct references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "src/codec/stage.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {
using testing::find_part;
using testing::normal_vector;
using testing::round_trip;

TEST(BitDelta, ScaleIsMeanAbsAndErrorMatchesClosedForm) {
  auto d = normal_vector(64 * 96, 1);
  auto rt = round_trip("bitdelta", d, {64, 96});
  double sum_abs = 0, sum_sq = 0;
  for (float x : d) sum_abs += std::fabs(x), sum_sq += double(x) * x;
  const double alpha = sum_abs / d.size();
  const Part* scales = find_part(rt.enc, "bitdelta.scales");
  ASSERT_NE(scales, nullptr);
  float stored;
  std::memcpy(&stored, scales->bytes.data(), 4);
  EXPECT_NEAR(stored, alpha, 1e-6 * alpha);
  double err = 0;
  for (uint64_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(std::fabs(rt.recon[i]), stored);
    EXPECT_EQ(rt.recon[i] > 0, d[i] >= 0);
    err += (d[i] - rt.recon[i]) * double(d[i] - rt.recon[i]);
  }
  // ‖δ − α·sign δ‖² = Σδ² − n·α² for α = mean|δ|
  EXPECT_NEAR(err, sum_sq - d.size() * alpha * alpha, 1e-5 * sum_sq);
  // one bit per entry: 768 bytes of signs for 6144 entries
  EXPECT_EQ(find_part(rt.enc, "bitdelta.signs")->bytes.size(), 768u);
}

// A coder that measures its error while encoding gives the sums a decoded copy gives: bit for bit
// where it compares each value with its reconstruction (quant, dare, topk), to 1e-12 where it uses
// the closed form (one-level BitDelta: Σδ² − 2sΣ|δ| + n·s² per unit, Σ|δ| in float runs: to ~1e-8; 1e-6
// asserted; with a cherry, that form over the entries no cherry took plus the cherries' rounding).
// A chain whose coder cannot see the whole tensor leaves it to the decoded copy.
TEST(CodecError, MeasuredWhileEncodingEqualsTheDecodedCopy) {
  auto d = normal_vector(37 * 101, 5);  // odd sizes: unaligned lane heads and tails per row
  d[3] = 0.0f, d[4] = -0.0f;
  for (const char* recipe :
       {"bitdelta", "bitdelta:scale=row", "bitdelta:scale=group:13", "quant:bits=4", "quant:bits=3,group=50",
        "quant:bits=8", "quant:bits=2", "dare:p=0.9", "dare:p=0.5,rescale=none", "topk:density=0.1",
        "bitdelta + cherry:frac=0.01", "bitdelta:scale=row + cherry:frac=0.02"}) {
    SCOPED_TRACE(recipe);
    const bool closed_form = std::string(recipe).starts_with("bitdelta");
    for (DType dt : {DType::F32, DType::BF16}) {
      auto rt = round_trip(recipe, d, {37, 101}, dt);
      ASSERT_TRUE(rt.enc.error_measured);
      const ErrorNorms ref = error_norms(d, rt.recon);
      EXPECT_GT(ref.err_sq, 0.0);
      if (closed_form) {
        EXPECT_NEAR(rt.enc.err_sq, ref.err_sq, 1e-6 * ref.err_sq);
        EXPECT_NEAR(rt.enc.delta_sq, ref.delta_sq, 1e-12 * ref.delta_sq);
      } else {
        EXPECT_EQ(rt.enc.err_sq, ref.err_sq);
        EXPECT_EQ(rt.enc.delta_sq, ref.delta_sq);
      }
    }
  }
  for (const char* recipe :
       {"bitdelta:levels=4", "dare:p=0.5>bitdelta", "bitdelta+cherry:frac=0.01,per=tensor", "quant:bits=4+cherry:frac=0.01",
        "topk:density=0.1>quant:bits=4"})
    EXPECT_FALSE(round_trip(recipe, d, {37, 101}).enc.error_measured) << recipe;
}

// A coder that offers its reconstruction while encoding (for the cherry pass) writes what
// decoding gives, value for value.
TEST(CodecError, ReconstructionWrittenWhileEncodingEqualsTheDecoded) {
  auto d = normal_vector(37 * 101, 6);
  for (const char* recipe : {"bitdelta", "bitdelta:scale=row", "bitdelta:scale=group:13"}) {
    SCOPED_TRACE(recipe);
    const Recipe r = parse_recipe(recipe, 7);
    const auto rows = dense_row_offsets(37, 101);
    std::vector<float> recon(d.size(), NAN);
    Encoded e;
    r.chain[0]->encode_values(ValueStream{d, rows, {}, recon.data()}, e);
    ASSERT_TRUE(e.recon_written);
    const auto rt = round_trip(recipe, d, {37, 101});
    EXPECT_EQ(recon, rt.recon);
  }
}

TEST(BitDelta, SignOfZeroIsPlus) {
  std::vector<float> d = {0.0f, -0.0f, 1.0f, -1.0f, 0.0f, 2.0f, -3.0f, 0.5f, 0.0f};
  auto rt = round_trip("bitdelta", d, {9});
  const Part* signs = find_part(rt.enc, "bitdelta.signs");
  EXPECT_EQ(signs->bytes[0], 0b10110111);  // LSB first: + + + - + + - + (-0 counts as 0)
  EXPECT_EQ(signs->bytes[1], 0b1);
  EXPECT_GT(rt.recon[0], 0.0f);
}

TEST(BitDelta, RowAndGroupScales) {
  auto d = normal_vector(8 * 50, 2);
  for (int i = 0; i < 50; ++i) d[3 * 50 + i] *= 10;  // row 3 is larger
  auto row = round_trip("bitdelta:scale=row", d, {8, 50});
  auto grp = round_trip("bitdelta:scale=group:20", d, {8, 50});
  for (uint64_t r = 0; r < 8; ++r) {
    double s = 0;
    for (int i = 0; i < 50; ++i) s += std::fabs(d[r * 50 + i]);
    EXPECT_NEAR(std::fabs(row.recon[r * 50]), s / 50, 1e-6);
  }
  for (uint64_t g = 0; g < 20; ++g) {
    double s = 0;
    for (uint64_t i = g * 20; i < g * 20 + 20; ++i) s += std::fabs(d[i]);
    EXPECT_NEAR(std::fabs(grp.recon[g * 20 + 7]), s / 20, 1e-6);
  }
  auto err = [&](const std::vector<float>& r) { return relative_error(d, r); };
  EXPECT_LT(err(row.recon), err(round_trip("bitdelta", d, {8, 50}).recon));
}

TEST(BitDelta, LevelsAreBlockMeansOfSortedMagnitudes) {
  auto d = normal_vector(1000, 3);
  auto rt = round_trip("bitdelta:levels=4", d, {1000});
  std::vector<float> mags;
  for (float x : d) mags.push_back(std::fabs(x));
  std::vector<float> sorted = mags;
  std::sort(sorted.begin(), sorted.end());
  double means[4];
  for (int b = 0; b < 4; ++b) {
    double s = 0;
    for (int t = b * 250; t < (b + 1) * 250; ++t) s += sorted[t];
    means[b] = s / 250;
  }
  for (uint64_t i = 0; i < d.size(); ++i) {
    int rank = static_cast<int>(std::lower_bound(sorted.begin(), sorted.end(), mags[i]) - sorted.begin());
    EXPECT_NEAR(std::fabs(rt.recon[i]), means[rank / 250], 1e-7) << i;
    EXPECT_EQ(rt.recon[i] >= 0, d[i] >= 0);
  }
  EXPECT_LT(relative_error(d, rt.recon), relative_error(d, round_trip("bitdelta", d, {1000}).recon) / 2);
}

TEST(Quant, ErrorAtMostHalfAStep) {
  auto d = normal_vector(128 * 40 + 17, 4);
  for (unsigned bits : {2u, 3u, 4u, 8u}) {
    auto rt = round_trip("quant:bits=" + std::to_string(bits) + ",group=128", d, {d.size()});
    const Part* steps = find_part(rt.enc, "quant.steps");
    ASSERT_NE(steps, nullptr);
    for (uint64_t i = 0; i < d.size(); ++i) {
      float step;
      std::memcpy(&step, steps->bytes.data() + (i / 128) * 4, 4);
      EXPECT_LE(std::fabs(d[i] - rt.recon[i]), 0.5f * step * (1 + 1e-4f) + 1e-12f) << bits << " bits, i=" << i;
    }
    EXPECT_EQ(find_part(rt.enc, "quant.codes")->bytes.size(), (d.size() * bits + 7) / 8);
  }
}

TEST(Quant, ConstantGroupIsExact) {
  std::vector<float> d(300, 0.25f);
  auto rt = round_trip("quant:bits=2,group=128", d, {300});
  EXPECT_EQ(rt.recon, d);
}

}  // namespace
}  // namespace deltakit
