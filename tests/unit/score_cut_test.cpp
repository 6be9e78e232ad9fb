#include "src/codec/score_cut.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "src/core/philox.h"
#include "src/pipeline/cut_candidates.h"

namespace deltakit {
namespace {

// The reference: a stable sort by |x| descending (ties to the lower index), first k candidates.
std::vector<uint8_t> by_sort(const std::vector<float>& x, uint64_t k, const std::vector<uint8_t>& skip) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < x.size(); ++i)
    if (skip.empty() || !skip[i]) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return std::fabs(x[a]) > std::fabs(x[b]); });
  std::vector<uint8_t> in(x.size(), 0);
  for (size_t j = 0; j < std::min<size_t>(k, idx.size()); ++j) in[idx[j]] = 1;
  return in;
}

std::vector<uint8_t> by_cut(const std::vector<float>& x, uint64_t k, const std::vector<uint8_t>& skip) {
  ScoreCut cut = magnitude_cut(x, k, skip);
  std::vector<uint8_t> in(x.size(), 0);
  for (size_t i = 0; i < x.size(); ++i)
    if (skip.empty() || !skip[i]) in[i] = cut.keep(magnitude_key(x[i]));
  return in;
}

// Values with many exact ties in magnitude and sign, zeros of both signs, and a wide exponent range
// (entries that share the high 16 bits but differ in the low ones).
std::vector<float> tricky(size_t n, uint64_t seed) {
  TensorRng rng(seed, "magnitude_cut_test");
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t w = rng.word(i);
    switch (w % 5) {
      case 0: x[i] = (w & 8) ? -0.25f : 0.25f; break;                     // ties of both signs
      case 1: x[i] = (w & 8) ? -0.0f : 0.0f; break;                       // zeros
      case 2: x[i] = 0.25f + static_cast<float>(w >> 20) * 1e-7f; break;  // same high bits as 0.25
      default: x[i] = rng.normal(i) * std::ldexp(1.0f, static_cast<int>(w % 40) - 20);
    }
  }
  return x;
}

TEST(MagnitudeCut, EqualsAStableSortForEveryK) {
  const auto x = tricky(997, 3);
  for (uint64_t k : {0ull, 1ull, 2ull, 10ull, 199ull, 200ull, 201ull, 500ull, 996ull, 997ull, 2000ull})
    EXPECT_EQ(by_cut(x, k, {}), by_sort(x, k, {})) << "k=" << k;
}

TEST(MagnitudeCut, SkippedEntriesAreNeitherCountedNorKept) {
  const auto x = tricky(640, 4);
  std::vector<uint8_t> skip(x.size());
  for (size_t i = 0; i < skip.size(); ++i) skip[i] = (i % 3) == 0;
  for (uint64_t k : {0ull, 5ull, 100ull, 426ull, 427ull, 640ull})
    EXPECT_EQ(by_cut(x, k, skip), by_sort(x, k, skip)) << "k=" << k;
  std::vector<uint8_t> all(x.size(), 1);
  EXPECT_EQ(by_cut(x, 10, all), std::vector<uint8_t>(x.size(), 0));
}

TEST(MagnitudeCut, AllEqualKeepsTheFirstK) {
  std::vector<float> x(50, -1.5f);
  auto in = by_cut(x, 7, {});
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(in[i], i < 7) << i;
}

// The builder fed in blocks of odd sizes, long enough for its lane and group loops (2^14 and
// more entries a block), with NaNs and Infs among the values: the same cut as a stable sort,
// and builders made one after another on a thread (their lent tables) agree with fresh ones.
TEST(MagnitudeCut, BlockwiseBuilderEqualsAStableSort) {
  auto x = tricky(100'003, 5);
  for (size_t i = 7; i < x.size(); i += 9973) x[i] = std::nanf("");
  x[11] = -INFINITY, x[50'000] = INFINITY;
  std::vector<float> finite_or_zero(x);  // the reference orders NaN as 0, like magnitude_key
  for (float& v : finite_or_zero)
    if (std::isnan(v)) v = 0.0f;
  for (uint64_t k : {1ull, 2ull, 1000ull, 33'333ull, 50'001ull, 99'999ull, 100'003ull}) {
    for (int round = 0; round < 2; ++round) {
      MagnitudeCutBuilder b(k);
      while (!b.done()) {
        for (size_t at = 0; at < x.size();) {
          const size_t len = std::min<size_t>(x.size() - at, at == 0 ? 20'000 : 40'961);
          b.add(std::span<const float>(x).subspan(at, len));
          at += len;
        }
        b.next();
      }
      ScoreCut cut = b.cut();
      std::vector<uint8_t> in(x.size());
      for (size_t i = 0; i < x.size(); ++i) in[i] = cut.keep(magnitude_key(x[i]));
      EXPECT_EQ(in, by_sort(finite_or_zero, k, {})) << "k=" << k << " round " << round;
    }
  }
}

// The model-wide cut's kept entries hold positions in 32 bits: up to 2^32 - 1 they come back
// whole; a tensor with an entry past that marks the pool too wide (the cut then takes the
// radix select over every score).
TEST(CandidatePool, PositionsPast32BitsMarkItTooWide) {
  CandidatePool pool(2, 4, 1 << 20);
  StagedEntries staged;
  const std::vector<float> scores = {1, 2, 3}, values = {0.25f, 0.5f, 0.75f};
  pool.add(0, (uint64_t{1} << 32) - 3, scores, values, staged);
  pool.hand_over(0, staged);
  EXPECT_FALSE(pool.too_wide());
  std::vector<uint64_t> positions;
  std::vector<float> kept;
  pool.entries(0).for_each([&](uint32_t, uint64_t p, float v) { positions.push_back(p), kept.push_back(v); });
  EXPECT_EQ(positions, (std::vector<uint64_t>{(uint64_t{1} << 32) - 3, (uint64_t{1} << 32) - 2, UINT32_MAX}));
  EXPECT_EQ(kept, values);
  const std::vector<uint64_t> past = {5, uint64_t{1} << 32};
  pool.add_some(1, past, std::span(scores).first(2), std::span(values).first(2), 0, staged);
  EXPECT_TRUE(pool.too_wide());
}

}  // namespace
}  // namespace deltakit
