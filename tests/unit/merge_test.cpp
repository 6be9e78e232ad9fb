// Merge methods against direct dense references written from the formulas in algorithms.md §8 (full
// sorts, explicit loops), on small random tensors with fixed seeds.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <numeric>

#include "src/core/error.h"
#include "src/core/philox.h"
#include "src/merge/combine.h"
#include "src/merge/merge_config.h"
#include "src/merge/methods.h"
#include "src/merge/slerp.h"
#include "src/pipeline/diff.h"

namespace deltakit {
namespace {

std::vector<float> randn(uint64_t seed, size_t n, float scale, float shift = 0) {
  TensorRng rng(seed, "merge_test");
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = shift + scale * rng.normal(i);
  return v;
}

struct Fixture {
  size_t rows = 6, cols = 40, n = 240;
  std::vector<float> base = randn(1, 240, 0.05f);
  std::vector<std::vector<float>> models;
  mutable std::deque<std::vector<float>> work;  // merge_tensor overwrites its models: each args() gets copies
  Fixture() {
    for (uint64_t m = 0; m < 3; ++m) {
      auto d = randn(10 + m, n, 0.01f);
      for (size_t i = 0; i < n; ++i) d[i] += base[i];
      models.push_back(d);
    }
  }
  TensorMergeArgs args(double density = 1.0) const {
    TensorMergeArgs a;
    a.name = "model.layers.0.mlp.up_proj.weight";
    a.cols = cols;
    a.base = base;
    for (const auto& m : models) a.models.emplace_back(work.emplace_back(m));
    a.weight = {0.5, 0.3, -0.2};
    a.density = {density, density, density};
    a.gamma = {0.05, 0.05, 0.05};
    a.epsilon = {0.1, 0.1, 0.1};
    a.seed = 7;
    return a;
  }
  std::vector<float> run(const std::string& method, TensorMergeArgs a) const {
    std::vector<float> out(n);
    for (auto& m : a.models) m = work.emplace_back(m.begin(), m.end());  // a may be run more than once
    merge_tensor(merge_method(method), a, out);
    return out;
  }
};

// δ sorted by |δ| descending, ties to the lower index (a full sort, not nth_element)
std::vector<size_t> by_magnitude(const std::vector<float>& d) {
  std::vector<size_t> idx(d.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return std::fabs(d[a]) > std::fabs(d[b]); });
  return idx;
}

// The mix of algorithms.md §8: optional sum consensus, normalize, lambda; same precision steps as documented
// (weighted deltas in fp32, sums in double).
std::vector<float> mix(const std::vector<float>& base, const std::vector<std::vector<float>>& wd,
                       const std::vector<double>& w, bool consensus, bool normalize, double lambda) {
  std::vector<float> out(base.size());
  for (size_t i = 0; i < base.size(); ++i) {
    double sum = 0;
    for (const auto& d : wd) sum += d[i];
    const int majority = sum >= 0 ? 1 : -1;
    double mixed = 0, div = 0;
    for (size_t k = 0; k < wd.size(); ++k) {
      const int s = wd[k][i] > 0 ? 1 : wd[k][i] < 0 ? -1 : 0;
      if (consensus && s != majority) continue;
      mixed += wd[k][i];
      div += w[k];
    }
    if (consensus && div == 0) div = 1;
    if (!consensus) {
      div = 0;
      for (double x : w) div += x;
      if (std::fabs(div) < 1e-8) div = 1;
    }
    if (normalize) mixed /= div;
    out[i] = static_cast<float>(base[i] + lambda * mixed);
  }
  return out;
}

std::vector<float> delta_of(const Fixture& f, size_t m) {
  std::vector<float> d(f.n);
  for (size_t i = 0; i < f.n; ++i) d[i] = f.models[m][i] - f.base[i];
  return d;
}

// The weighted task vectors algorithms.md §8 mixes: w_m · sparsified(δ_m, m) for the fixture's three models.
template <class Sparsified>
std::vector<std::vector<float>> weighted_deltas(const Fixture& f, const TensorMergeArgs& a, Sparsified sparsified) {
  std::vector<std::vector<float>> wd;
  for (size_t m = 0; m < 3; ++m) {
    std::vector<float> d = sparsified(delta_of(f, m), m);
    for (auto& v : d) v *= static_cast<float>(a.weight[m]);
    wd.push_back(d);
  }
  return wd;
}

TEST(Merge, TaskArithmeticIsBasePlusLambdaWeightedSum) {
  Fixture f;
  auto a = f.args();
  a.lambda = 0.7;
  auto got = f.run("task_arithmetic", a);
  const auto wd = weighted_deltas(f, a, [](std::vector<float> d, size_t) { return d; });
  EXPECT_EQ(got, mix(f.base, wd, a.weight, false, false, 0.7));
}

TEST(Merge, TiesTrimsElectsAndTakesTheDisjointMean) {
  Fixture f;
  auto a = f.args(0.3);
  a.normalize = true;
  auto got = f.run("ties", a);
  const auto wd = weighted_deltas(f, a, [&](std::vector<float> d, size_t) {
    auto order = by_magnitude(d);
    std::vector<float> t(f.n, 0.0f);
    for (size_t j = 0; j < static_cast<size_t>(0.3 * f.n); ++j) t[order[j]] = d[order[j]];
    return t;
  });
  EXPECT_EQ(got, mix(f.base, wd, a.weight, true, true, 1.0));
}

TEST(Merge, DareTiesWithNothingDroppedIsTies) {
  Fixture f;
  auto a = f.args(1.0);
  a.normalize = true;
  a.rescale = RescaleNorm::L1;
  EXPECT_EQ(f.run("dare_ties", a), f.run("ties", a));
  a.normalize = false;
  EXPECT_EQ(f.run("dare_ties", a), f.run("ties", a));
}

TEST(Merge, DareLinearDropsWithTheCounterRngAndRescales) {
  Fixture f;
  for (RescaleNorm r : {RescaleNorm::Inverse, RescaleNorm::L1, RescaleNorm::None}) {
    auto a = f.args(0.4);
    a.rescale = r;
    auto got = f.run("dare_linear", a);
    const auto wd = weighted_deltas(f, a, [&](std::vector<float> d, size_t m) {
      TensorRng rng(a.seed + m, a.name);
      std::vector<float> kept(f.n, 0.0f);
      double l1 = 0, l1_kept = 0;
      for (size_t i = 0; i < f.n; ++i) {
        l1 += std::fabs(d[i]);
        // dropped with probability 1 − density: uniform word below (1 − density)·2^32
        if (rng.word(i) >= TensorRng::drop_threshold(0.6)) kept[i] = d[i], l1_kept += std::fabs(d[i]);
      }
      for (auto& v : kept) {
        if (r == RescaleNorm::Inverse) v = static_cast<float>(v / 0.4);
        if (r == RescaleNorm::L1) v *= static_cast<float>(l1 / l1_kept);
      }
      return kept;
    });
    auto want = mix(f.base, wd, a.weight, false, false, 1.0);
    for (size_t i = 0; i < f.n; ++i) EXPECT_NEAR(got[i], want[i], 1e-7) << rescale_name(r) << " " << i;
  }
}

TEST(Merge, DareKeepsAboutDensityAndL1RescaleKeepsTheNorm) {
  std::vector<float> d = randn(3, 100000, 1.0f);
  double l1 = 0;
  for (float v : d) l1 += std::fabs(v);
  SparsifyOptions o;
  o.method = SparsifyMethod::Random, o.density = 0.1, o.rescale = RescaleNorm::L1, o.seed = 5, o.rng_key = "x";
  sparsify(d, 0, o);
  size_t kept = 0;
  double l1_after = 0;
  for (float v : d) kept += v != 0, l1_after += std::fabs(v);
  EXPECT_NEAR(kept / 100000.0, 0.1, 0.004);
  EXPECT_NEAR(l1_after / l1, 1.0, 1e-5);
}

TEST(Merge, BreadcrumbsDropsTheLargestAndTheSmallest) {
  std::vector<float> d = randn(4, 1000, 1.0f), orig = d;
  SparsifyOptions o;
  o.method = SparsifyMethod::MagnitudeOutliers, o.density = 0.5, o.gamma = 0.1;
  sparsify(d, 0, o);
  auto order = by_magnitude(orig);
  for (size_t j = 0; j < 1000; ++j) {
    const bool keep = j >= 100 && j < 600;  // ranks [gamma·n, gamma·n + density·n)
    EXPECT_EQ(d[order[j]], keep ? orig[order[j]] : 0.0f) << j;
  }
  // gamma too large for the density: fewer outliers are dropped, density still holds
  d = orig;
  o.density = 0.95, o.gamma = 0.2;
  sparsify(d, 0, o);
  EXPECT_EQ(std::count_if(d.begin(), d.end(), [](float v) { return v != 0; }), 950);
  EXPECT_EQ(d[order[0]], 0.0f);
  EXPECT_NE(d[order[50]], 0.0f);
}

TEST(Merge, DellaKeepProbabilityRisesWithMagnitudeRankPerRow) {
  const size_t rows = 200, cols = 50;
  std::vector<float> d = randn(5, rows * cols, 1.0f), orig = d;
  SparsifyOptions o;
  o.method = SparsifyMethod::DellaMagprune, o.density = 0.5, o.epsilon = 0.3, o.rescale = RescaleNorm::Inverse;
  o.seed = 9, o.rng_key = "della";
  sparsify(d, cols, o);
  TensorRng rng(9, "della");
  std::vector<double> kept_by_rank(cols, 0);
  for (size_t r = 0; r < rows; ++r) {
    std::vector<float> row(orig.begin() + r * cols, orig.begin() + (r + 1) * cols);
    auto order = by_magnitude(row);  // descending
    for (size_t j = 0; j < cols; ++j) {
      const size_t i = r * cols + order[j];
      const double p = (0.5 - 0.3) + (static_cast<double>(cols - 1 - j) / (cols - 1)) * 0.6;
      const bool keep = rng.word(i) >= TensorRng::drop_threshold(1.0 - p);
      EXPECT_FLOAT_EQ(d[i], keep ? static_cast<float>(orig[i] / p) : 0.0f);
      kept_by_rank[j] += keep;
    }
  }
  // the largest entries survive ~80% of the time, the smallest ~20%
  EXPECT_GT(kept_by_rank[0] / rows, 0.7);
  EXPECT_LT(kept_by_rank[cols - 1] / rows, 0.3);
  o.epsilon = 0.6;
  EXPECT_THROW(sparsify(d, cols, o), Error);
}

TEST(Merge, LinearIsTheWeightedAverage) {
  Fixture f;
  auto a = f.args();
  a.weight = {1.0, 2.0, 1.0};
  a.normalize = true;
  auto got = f.run("linear", a);
  for (size_t i = 0; i < f.n; ++i)
    EXPECT_FLOAT_EQ(got[i], static_cast<float>((f.models[0][i] + 2.0 * f.models[1][i] + f.models[2][i]) / 4.0));
}

TEST(Merge, SlerpEndpointsOrthogonalAndParallelCases) {
  std::vector<float> v0 = {1, 0, 0, 0}, v1 = {0, 2, 0, 0}, out(4);
  slerp(0.0, v0, v1, out);
  EXPECT_NEAR(out[0], 1, 1e-6);
  EXPECT_NEAR(out[1], 0, 1e-6);
  slerp(1.0, v0, v1, out);
  EXPECT_NEAR(out[0], 0, 1e-6);
  EXPECT_NEAR(out[1], 2, 1e-6);
  slerp(0.5, v0, v1, out);  // θ0 = π/2: s0 = s1 = sin(π/4)
  EXPECT_NEAR(out[0], std::sqrt(0.5), 1e-6);
  EXPECT_NEAR(out[1], 2 * std::sqrt(0.5), 1e-6);
  std::vector<float> w = {2, 0, 0, 0};  // parallel: plain lerp
  slerp(0.25, v0, w, out);
  EXPECT_FLOAT_EQ(out[0], 1.25f);
}

// NuSLERP of one vector pair, straight from its definition (unit vectors, angle, sines).
std::vector<double> nuslerp_ref(double t, const std::vector<double>& a, const std::vector<double>& b) {
  double na = 0, nb = 0, dot = 0;
  for (size_t i = 0; i < a.size(); ++i) na += a[i] * a[i], nb += b[i] * b[i];
  na = std::max(std::sqrt(na), 1e-7), nb = std::max(std::sqrt(nb), 1e-7);
  for (size_t i = 0; i < a.size(); ++i) dot += (a[i] / na) * (b[i] / nb);
  const double th = std::acos(std::clamp(dot, -1.0, 1.0));
  std::vector<double> r(a.size());
  for (size_t i = 0; i < a.size(); ++i)
    r[i] = std::fabs(std::sin(th)) < 1e-8 ? (1 - t) * a[i] + t * b[i]
                                          : (std::sin((1 - t) * th) * a[i] + std::sin(t * th) * b[i]) / std::sin(th);
  return r;
}

TEST(Merge, NuSlerpOfTaskVectorsWholeRowsAndColumns) {
  Fixture f;  // 6 rows × 40 columns; models 0 and 1 with weights 0.5 and 0.3: t = 0.3/0.8
  auto a = f.args();
  a.models.pop_back(), a.weight.pop_back();
  a.leading = f.rows;
  const double t = 0.3 / 0.8;
  for (auto how : {NuSlerpVectors::Flatten, NuSlerpVectors::Rows, NuSlerpVectors::Columns}) {
    a.nuslerp_vectors = how;
    const auto got = f.run("nuslerp", a);
    const auto d0 = delta_of(f, 0), d1 = delta_of(f, 1);
    // the vectors as element-index lists
    std::vector<std::vector<size_t>> vecs;
    if (how == NuSlerpVectors::Flatten) vecs.emplace_back(f.n), std::iota(vecs[0].begin(), vecs[0].end(), 0);
    for (size_t r = 0; how == NuSlerpVectors::Rows && r < f.rows; ++r) {
      vecs.emplace_back();
      for (size_t c = 0; c < f.cols; ++c) vecs.back().push_back(r * f.cols + c);
    }
    for (size_t c = 0; how == NuSlerpVectors::Columns && c < f.cols; ++c) {
      vecs.emplace_back();
      for (size_t r = 0; r < f.rows; ++r) vecs.back().push_back(r * f.cols + c);
    }
    for (const auto& idx : vecs) {
      std::vector<double> x, y;
      for (size_t i : idx) x.push_back(d0[i]), y.push_back(d1[i]);
      const auto want = nuslerp_ref(t, x, y);
      for (size_t j = 0; j < idx.size(); ++j)
        EXPECT_NEAR(got[idx[j]], f.base[idx[j]] + want[j], 1e-6) << static_cast<int>(how) << " at " << idx[j];
    }
  }
  // colinear task vectors interpolate linearly; weights summing to ~0 give t = 0.5
  auto b = f.args();
  b.models.pop_back(), b.weight = {1.0, -1.0};
  std::vector<float> d0 = delta_of(f, 0), m1(f.n);
  for (size_t i = 0; i < f.n; ++i) m1[i] = f.base[i] + 3.0f * d0[i];
  b.models[1] = m1;
  const auto got = f.run("nuslerp", b);
  for (size_t i = 0; i < f.n; ++i) EXPECT_NEAR(got[i], f.base[i] + 2.0f * d0[i], 1e-6);
}

// merge's streamed task arithmetic, fused (combine_task_arithmetic), is weighing θ_j − θ_b in
// place and combine_deltas, bit for bit: weights summing to zero and not, λ, normalize, a length
// that is not a multiple of the block, values of every magnitude.
TEST(Merge, FusedTaskArithmeticIsWeighingThenCombining) {
  const size_t n = 1500;
  std::vector<float> base(n);
  std::vector<std::vector<float>> models(3, std::vector<float>(n));
  uint32_t x = 12345;
  const auto next = [&] {
    x = x * 1664525u + 1013904223u;
    return std::ldexp(static_cast<float>(static_cast<int32_t>(x)) / 2147483648.0f, static_cast<int>(x % 40) - 20);
  };
  for (auto& v : base) v = next();
  for (auto& m : models)
    for (auto& v : m) v = next();
  for (const std::vector<double>& w : {std::vector<double>{0.5, 0.3, 0.7}, std::vector<double>{1.0, -0.5, -0.5}})
    for (double lambda : {1.0, 0.37})
      for (bool normalize : {false, true}) {
        std::vector<float> fused(n), reference(n);
        const std::vector<std::span<const float>> thetas(models.begin(), models.end());
        combine_task_arithmetic(base, thetas, w, lambda, normalize, fused);
        std::vector<std::vector<float>> weighed = models;
        for (size_t k = 0; k < weighed.size(); ++k)
          for (size_t i = 0; i < n; ++i) weighed[k][i] = (weighed[k][i] - base[i]) * static_cast<float>(w[k]);
        const std::vector<std::span<const float>> spans(weighed.begin(), weighed.end());
        CombineOptions o;
        o.lambda = lambda, o.normalize = normalize;
        combine_deltas(base, spans, w, o, reference);
        EXPECT_EQ(0, std::memcmp(fused.data(), reference.data(), n * sizeof(float)))
            << "lambda " << lambda << " normalize " << normalize << " weights " << w[0] << "," << w[1];
      }
}

TEST(Merge, ResultsDoNotDependOnThreads) {
  Fixture f;
  for (const std::string m : {"ties", "dare_ties", "della", "breadcrumbs_ties", "linear"}) {
    auto a = f.args(0.5);
    a.normalize = true;
    a.rescale = RescaleNorm::L1;
    omp_set_num_threads(1);
    auto one = f.run(m, a);
    omp_set_num_threads(2);
    EXPECT_EQ(one, f.run(m, a)) << m;
  }
}

// merge's streamed path: sparsify() a block at a time (statistics passes, then the drop) gives
// sparsify()'s values bit for bit, for any block cut on a multiple of 8, with ties common.
TEST(Merge, StreamSparsifierIsSparsifyBlockByBlock) {
  const size_t n = 50000;
  std::vector<float> d = randn(3, n, 0.01f);
  for (size_t i = 0; i < n; i += 7) d[i] = 0.0125f * static_cast<float>(i % 3);  // many equal magnitudes
  for (SparsifyMethod m : {SparsifyMethod::None, SparsifyMethod::Magnitude, SparsifyMethod::Random})
    for (RescaleNorm r : {RescaleNorm::None, RescaleNorm::L1, RescaleNorm::L2, RescaleNorm::Linf, RescaleNorm::Inverse})
      for (double density : {0.0, 0.001, 0.3, 0.5, 1.0})
        for (size_t block : {size_t{8}, size_t{1000}, size_t{4096}, n}) {
          SCOPED_TRACE(std::string(sparsify_name(m)) + " " + rescale_name(r) + " density " + std::to_string(density) +
                       " block " + std::to_string(block));
          SparsifyOptions o;
          o.method = m, o.density = density, o.rescale = r, o.seed = 9, o.rng_key = "w";
          std::vector<float> whole = d;
          sparsify(whole, 100, o);
          StreamSparsifier s(n, o);
          int passes = 0;
          while (s.needs_pass()) {
            for (size_t f = 0; f < n; f += block)
              s.observe(f, std::span<const float>(d).subspan(f, std::min(block, n - f)));
            s.end_pass();
            ++passes;
          }
          EXPECT_LE(passes, 3);
          std::vector<float> got = d;
          for (size_t f = 0; f < n; f += block) s.drop(f, std::span<float>(got).subspan(f, std::min(block, n - f)));
          ASSERT_EQ(0, std::memcmp(got.data(), whole.data(), n * 4));
        }
  SparsifyOptions bad;
  bad.method = SparsifyMethod::Magnitude, bad.density = 1.5;
  EXPECT_THROW(StreamSparsifier(10, bad), Error);
  bad.method = SparsifyMethod::DellaMagprune;
  EXPECT_FALSE(StreamSparsifier::supports(bad));
}

TEST(MergeParams, ScalarsGradientsAndFilters) {
  ParamValue g(std::vector<ParamValue::Rule>{{"mlp", {0.0, 1.0}}, {"", {0.3}}});
  EXPECT_DOUBLE_EQ(
      *g.at("model.layers.2.mlp.up_proj.weight", gradient_position("model.layers.2.mlp.up_proj.weight", 5)), 0.5);
  EXPECT_DOUBLE_EQ(*g.at("model.layers.4.mlp.up_proj.weight", 1.0), 1.0);
  EXPECT_DOUBLE_EQ(*g.at("model.layers.2.self_attn.q_proj.weight", 0.5), 0.3);
  ParamValue star(std::vector<ParamValue::Rule>{{"mlp", {0.7}}, {"*", {0.2}}});  // mergekit's wildcard
  EXPECT_DOUBLE_EQ(*star.at("model.layers.0.mlp.up_proj.weight", 0.0), 0.7);
  EXPECT_DOUBLE_EQ(*star.at("model.norm.weight", 0.0), 0.2);
  ParamValue three(std::vector<ParamValue::Rule>{{"", {0.0, 1.0, 0.0}}});
  EXPECT_DOUBLE_EQ(*three.at("x", 0.25), 0.5);
  EXPECT_DOUBLE_EQ(*three.at("x", 0.5), 1.0);
  EXPECT_EQ(layer_index("model.layers.17.mlp.down_proj.weight"), 17);
  EXPECT_EQ(layer_index("model.embed_tokens.weight"), std::nullopt);
  EXPECT_EQ(layer_index("model.sublayers.3.w"), std::nullopt);
  EXPECT_EQ(tensor_family("model.layers.17.mlp.down_proj.weight"), "mlp.down_proj.weight");  // diff's families
  EXPECT_EQ(tensor_family("lm_head.weight"), "lm_head.weight");
  EXPECT_DOUBLE_EQ(gradient_position("model.embed_tokens.weight", 4), 0.0);
  EXPECT_DOUBLE_EQ(gradient_position("lm_head.weight", 4), 0.0);  // mergekit v0.1.4: after the layers too
  EXPECT_DOUBLE_EQ(gradient_position("model.norm.weight", 4), 0.0);
  EXPECT_DOUBLE_EQ(gradient_position("model.layers.0.mlp.up_proj.weight", 1), 1.0);  // a one-layer model
}

TEST(MergeConfig, ParsesMergekitStyleAndRefusesMistakes) {
  const std::string ok = R"(
merge_method: dare_ties
base_model: /m/base
models:
  - model: /m/base
  - model: /m/a
    parameters: {weight: 0.5, density: [0.2, 0.8]}
  - model: /m/b.h5
    parameters:
      weight: 0.5
      density: [{filter: mlp, value: 0.3}, {value: 0.6}]
parameters: {normalize: true, int8_mask: true}
dtype: bfloat16
)";
  MergeConfig c = parse_merge_config(ok, "c.yml");
  EXPECT_EQ(c.models.size(), 2u);  // the base listed among the models is the base
  EXPECT_DOUBLE_EQ(merge_param(c, 0, "density", "model.layers.3.mlp.up_proj.weight", 0.5, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(merge_param(c, 1, "density", "model.layers.3.mlp.up_proj.weight", 0.5, 1.0), 0.3);
  EXPECT_DOUBLE_EQ(merge_param(c, 1, "density", "model.layers.3.self_attn.q_proj.weight", 0.5, 1.0), 0.6);
  EXPECT_DOUBLE_EQ(merge_param(c, 1, "normalize", "x", 0, 0), 1.0);
  EXPECT_DOUBLE_EQ(merge_param(c, 1, "gamma", "x", 0, 0.01), 0.01);
  auto refuses = [](const std::string& yaml, const std::string& what) {
    try {
      parse_merge_config(yaml, "bad.yml");
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.yml"), std::string::npos) << e.what();
    }
  };
  refuses("merge_method: ties\nbase_model: b\nmodels: [{model: a, parameters: {weight: 1, densty: 0.5}}]\n", "densty");
  refuses("merge_method: ties\nbase_model: b\nmodels: [{model: a, parameters: {density: 0.5}}]\n", "no weight");
  refuses("merge_method: ties\nmodels: [{model: a, parameters: {weight: 1}}]\n", "needs base_model");
  refuses("merge_method: frankenmerge\nmodels: [a]\n", "unknown merge_method");
  refuses("merge_method: slerp\nbase_model: b\nmodels: [a, c]\nparameters: {t: 0.5}\n", "exactly one");
  refuses("merge_method: slerp\nbase_model: b\nmodels: [{model: a, parameters: {t: 0.5}}]\n", "global parameter");
  const std::string ta =
      "merge_method: task_arithmetic\nbase_model: b\nmodels: [{model: a, parameters: {weight: 1}}]\n";
  refuses(ta + "tokenizer_source: union\n", "tokenizer_source: union");
  refuses(ta + "tokenizer: {source: base}\n", "'tokenizer' block");
  refuses(ta + "chat_template: chatml\n", "chat_template is not supported");
  refuses("slices: []\nmerge_method: linear\nmodels: [a]\n", "slices");
  refuses("merge_method: nuslerp\nmodels: [{model: a, parameters: {weight: 1}}]\n", "exactly two");
  refuses(
      "merge_method: ties\nbase_model: b\nmodels: [{model: a, parameters: {weight: 1}}, {model: a, parameters: "
      "{weight: 1}}]\n",
      "twice");
  refuses("merge_method: ties\nbase_model: b\nmodels: [{model: a, parameters: {weight: x}}]\n", "must be a number");
}

}  // namespace
}  // namespace deltakit
