// Low rank against Eckart–Young; cherry against a direct top-k of its score; chains.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "src/codec/lowrank.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {
using testing::find_part;
using testing::normal_vector;
using testing::round_trip;

// rows × cols matrix of rank `rank` plus N(0, noise²) entries.
std::vector<float> low_rank_plus_noise(uint64_t rows, uint64_t cols, uint64_t rank, float noise, uint32_t seed) {
  auto a = normal_vector(rows * rank, seed, 1.0f), b = normal_vector(rank * cols, seed + 1, 1.0f);
  auto e = normal_vector(rows * cols, seed + 2, noise);
  std::vector<float> m(rows * cols);
  for (uint64_t i = 0; i < rows; ++i)
    for (uint64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (uint64_t k = 0; k < rank; ++k) s += double(a[i * rank + k]) * b[k * cols + j];
      m[i * cols + j] = static_cast<float>(s * 1e-3) + e[i * cols + j];
    }
  return m;
}

TEST(Lowrank, ErrorEqualsTailSingularEnergy) {
  const uint64_t rows = 120, cols = 80;
  auto m = low_rank_plus_noise(rows, cols, 6, 1e-5f, 1);
  auto s = singular_values(m, rows, cols);
  for (uint64_t r : {3ull, 6ull, 10ull}) {
    auto rt = round_trip("lowrank:rank=" + std::to_string(r), m, {rows, cols});
    double tail = 0, total = 0, err = 0;
    for (uint64_t i = 0; i < s.size(); ++i) total += double(s[i]) * s[i], tail += i >= r ? double(s[i]) * s[i] : 0;
    for (uint64_t i = 0; i < m.size(); ++i) err += double(m[i] - rt.recon[i]) * (m[i] - rt.recon[i]);
    EXPECT_NEAR(err, tail, 1e-3 * total) << "rank " << r;
    EXPECT_EQ(find_part(rt.enc, "lowrank.us")->dims, (std::vector<uint64_t>{rows, r}));
  }
}

TEST(Lowrank, EnergyPicksTheSmallestRank) {
  auto m = low_rank_plus_noise(60, 50, 4, 1e-6f, 2);
  auto rt = round_trip("lowrank:energy=0.999", m, {60, 50});
  EXPECT_LE(rt.enc.attrs["lowrank.rank"].get<uint64_t>(), 4u);
  EXPECT_GE(rt.enc.attrs["lowrank.energy_kept"].get<double>(), 0.999);
}

TEST(Lowrank, RandomizedMatchesExactOnLowRankPlusNoise) {
  const uint64_t rows = 300, cols = 200;
  auto m = low_rank_plus_noise(rows, cols, 8, 1e-5f, 3);
  LowrankParams exact, rnd;
  exact.rank = rnd.rank = 8;
  rnd.full_svd_max_dim = 50;  // force the randomized path
  Encoded a, b;
  ValueType vt = value_type_for(DType::F32);
  lowrank_encode(exact, "w", m, rows, cols, vt, a);
  lowrank_encode(rnd, "w", m, rows, cols, vt, b);
  EXPECT_EQ(b.attrs["lowrank.method"], "randomized");
  auto ra = lowrank_decode(AttrReader{a.attrs, "a"}, EncodedSource(a), rows, cols, vt);
  auto rb = lowrank_decode(AttrReader{b.attrs, "b"}, EncodedSource(b), rows, cols, vt);
  double ea = relative_error(m, ra), eb = relative_error(m, rb);
  EXPECT_LT(eb, ea * 1.01 + 1e-6);
}

TEST(Cherry, KeepsExactlyTheTopScoresPerRow) {
  const uint64_t rows = 16, cols = 100;
  auto d = normal_vector(rows * cols, 5);
  auto h = normal_vector(cols, 6, 1.0f);
  for (auto& x : h) x = x * x;  // E[x_c²]-like, non-negative
  Importance imp{Importance::Kind::PerColumn, h};
  auto base = round_trip("bitdelta", d, {rows, cols});
  auto rt = round_trip("bitdelta + cherry:frac=0.05,importance=act:unused", d, {rows, cols}, DType::F32, 1, imp);
  // reference: per row, the 5 largest h_c·(δ − δ̂_bitdelta)²
  std::set<uint64_t> want;
  for (uint64_t r = 0; r < rows; ++r) {
    std::vector<std::pair<float, uint64_t>> sc;
    for (uint64_t c = 0; c < cols; ++c) {
      uint64_t i = r * cols + c;
      float e = d[i] - base.recon[i];
      sc.push_back({-(h[c] * e * e), i});
    }
    std::sort(sc.begin(), sc.end());
    for (int k = 0; k < 5; ++k) want.insert(sc[k].second);
  }
  EXPECT_EQ(rt.enc.attrs["cherry.count"].get<uint64_t>(), rows * 5);
  std::set<uint64_t> got;
  for (uint64_t i = 0; i < d.size(); ++i)
    if (rt.recon[i] == d[i]) got.insert(i);
  EXPECT_EQ(got, want);
  // the rest is BitDelta refitted without the cherries: α = mean |δ| over the others
  double s = 0;
  for (uint64_t i = 0; i < d.size(); ++i)
    if (!want.count(i)) s += std::fabs(d[i]);
  const double alpha = s / (d.size() - want.size());
  for (uint64_t i = 0; i < d.size(); ++i)
    if (!want.count(i)) {
      EXPECT_NEAR(std::fabs(rt.recon[i]), alpha, 1e-6 * alpha);
    }
  EXPECT_LT(relative_error(d, rt.recon), relative_error(d, base.recon));
}

TEST(Cherry, PerTensorAndQuantRefit) {
  auto d = normal_vector(4096, 7);
  d[100] = 0.5f;  // an outlier: quant reconstructs it exactly (it is its group's max), so the
                  // score (δ − δ̂)² does not pick it; the worst-rounded entries are picked
  auto q = round_trip("quant:bits=2,group=128", d, {4096});
  auto c = round_trip("quant:bits=2,group=128 + cherry:frac=0.001,per=tensor", d, {4096});
  EXPECT_EQ(c.enc.attrs["cherry.count"].get<uint64_t>(), 5u);  // ceil(0.001 · 4096)
  std::vector<std::pair<float, uint64_t>> sc;
  for (uint64_t i = 0; i < d.size(); ++i) sc.push_back({-(d[i] - q.recon[i]) * (d[i] - q.recon[i]), i});
  std::sort(sc.begin(), sc.end());
  std::set<uint64_t> kept;
  for (int k = 0; k < 5; ++k) kept.insert(sc[k].second);
  for (uint64_t i : kept) EXPECT_EQ(c.recon[i], d[i]);
  // refit: every group's min and step come from its non-cherry entries only
  const Part* mins = find_part(c.enc, "quant.mins");
  const Part* steps = find_part(c.enc, "quant.steps");
  for (uint64_t g = 0; g < 32; ++g) {
    float lo = INFINITY, hi = -INFINITY, m, st;
    for (uint64_t i = g * 128; i < g * 128 + 128; ++i)
      if (!kept.count(i)) lo = std::min(lo, d[i]), hi = std::max(hi, d[i]);
    std::memcpy(&m, mins->bytes.data() + 4 * g, 4);
    std::memcpy(&st, steps->bytes.data() + 4 * g, 4);
    EXPECT_EQ(m, lo);
    EXPECT_FLOAT_EQ(st, (hi - lo) / 3);
  }
  EXPECT_LT(relative_error(d, c.recon), relative_error(d, q.recon));
}

TEST(Chain, DareThenBitDeltaCodesTheSurvivors) {
  auto d = normal_vector(50 * 40, 8);
  auto dare = round_trip("dare:p=0.5", d, {50, 40});
  auto chain = round_trip("dare:p=0.5 > bitdelta:scale=row", d, {50, 40});
  for (uint64_t r = 0; r < 50; ++r) {
    double s = 0;
    int n = 0;
    for (uint64_t c = 0; c < 40; ++c)
      if (dare.recon[r * 40 + c] != 0) s += std::fabs(dare.recon[r * 40 + c]), ++n;
    for (uint64_t c = 0; c < 40; ++c) {
      uint64_t i = r * 40 + c;
      EXPECT_EQ(chain.recon[i] == 0, dare.recon[i] == 0) << i;  // same mask
      if (dare.recon[i] != 0) {
        EXPECT_NEAR(std::fabs(chain.recon[i]), s / n, 1e-6);  // α over the row's survivors (rescaled)
        EXPECT_EQ(chain.recon[i] > 0, d[i] >= 0);
      }
    }
  }
  EXPECT_EQ(find_part(chain.enc, "dare.values"), nullptr);
}

TEST(Chain, TopkThenQuant) {
  auto d = normal_vector(2000, 9);
  auto rt = round_trip("topk:density=0.2 > quant:bits=8,group=64", d, {2000});
  auto tk = round_trip("topk:density=0.2", d, {2000});
  for (uint64_t i = 0; i < d.size(); ++i) {
    EXPECT_EQ(rt.recon[i] == 0, tk.recon[i] == 0);
    if (tk.recon[i] != 0) {
      EXPECT_NEAR(rt.recon[i], d[i], 2e-5);
    }
  }
}

}  // namespace
}  // namespace deltakit
