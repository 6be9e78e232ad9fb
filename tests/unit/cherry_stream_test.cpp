// A cherry recipe's fused pass (src/codec/cherry_stream.h) against the two-pass definition built
// from the codec's own public steps: the chain alone's reconstruction, the scores, the selection
// (cherry_select per row, select_by_cut for a model-wide cut), the chain refitted with the
// cherries skipped. Same attributes and parts, byte for byte, from a bf16/f16/f32 pair (the
// fused pass) and from δ in memory (encode_tensor); the error within 1e-6 of a decoded copy's.
#include "src/codec/cherry_stream.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "src/codec/bitdelta.h"
#include "src/codec/codec.h"
#include "src/codec/error_norms.h"
#include "src/codec/magnitude_kept.h"
#include "src/codec/stage.h"
#include "src/core/half.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {
using testing::make_tensor_pair;
using testing::normal_vector;

std::vector<float> delta_of(const testing::TensorPairFixture& p, uint64_t n) {
  std::vector<float> b(n), f(n), d(n);
  decode_to_f32(p.dtype, p.base, 0, b);
  decode_to_f32(p.dtype, p.ft, 0, f);
  for (uint64_t i = 0; i < n; ++i) d[i] = f[i] - b[i];
  return d;
}

// The two-pass definition, step by step.
Encoded reference(const Recipe& chain, const Recipe& r, std::span<const float> delta, uint64_t rows, uint64_t cols,
                  DType dt, const Importance& imp, const ScoreCut* cut) {
  const uint64_t n = rows * cols;
  const BitDeltaParams prm = *one_level_bitdelta(chain);
  const auto row_offsets = dense_row_offsets(rows, cols);
  std::vector<float> recon(n);
  Encoded alone;
  bitdelta_encode(prm, ValueStream{delta, row_offsets, {}, recon.data()}, alone);
  const std::vector<uint64_t> kept = r.cherry->scope_model ? select_by_cut(cherry_scores(delta, recon, cols, imp), *cut)
                                                           : cherry_select(*r.cherry, delta, recon, rows, cols, imp);
  std::vector<uint8_t> skip(n, 0);
  std::vector<float> values;
  for (uint64_t p : kept) skip[p] = 1, values.push_back(delta[p]);
  Encoded e;
  bitdelta_encode(prm, ValueStream{delta, row_offsets, skip}, e);
  add_cherry_parts(e, kept, values, n, value_type_for(dt));
  e.attrs["recipe"] = r.canonical();
  e.attrs["codec"] = r.codec_names();
  return e;
}

void expect_same_parts(const Encoded& got, const Encoded& want) {
  EXPECT_EQ(got.attrs.dump(), want.attrs.dump());
  ASSERT_EQ(got.parts.size(), want.parts.size());
  for (size_t k = 0; k < want.parts.size(); ++k) {
    EXPECT_EQ(got.parts[k].name, want.parts[k].name);
    EXPECT_EQ(got.parts[k].dims, want.parts[k].dims);
    EXPECT_EQ(got.parts[k].bytes, want.parts[k].bytes) << want.parts[k].name;
  }
}

TEST(CherryStream, SameBytesAsTheTwoPassDefinition) {
  // many blocks of one unit, rows longer than a block, short rows, a vector, a tiny matrix
  const std::vector<std::vector<uint64_t>> shapes = {{96, 700}, {3, 40001}, {37, 101}, {50000}, {5, 8}};
  const std::vector<std::pair<const char*, const char*>> recipes = {
      {"bitdelta", "cherry:frac=0.01"},
      {"bitdelta:scale=row", "cherry:frac=0.05"},
      {"bitdelta:scale=group:13", "cherry:frac=0.02"},
      {"bitdelta", "cherry:frac=0.01,scope=model"},
      {"bitdelta:scale=row", "cherry:frac=0.003,scope=model"}};
  for (const auto& [chain_text, cherry_text] : recipes)
    for (DType dt : {DType::BF16, DType::F16, DType::F32})
      for (const auto& shape : shapes)
        for (Importance::Kind kind :
             {Importance::Kind::None, Importance::Kind::PerColumn, Importance::Kind::PerElement}) {
          // the importance the recipe names (the file is the caller's to load: here, made up)
          const std::string text = std::string(chain_text) + " + " + cherry_text +
                                   (kind == Importance::Kind::PerElement  ? ",importance=fisher:unused"
                                    : kind == Importance::Kind::PerColumn ? ",importance=act:unused"
                                                                          : "");
          const Recipe r = parse_recipe(text, 7), chain = parse_recipe(chain_text, 7);
          const testing::TensorPairFixture p = make_tensor_pair(shape, dt, 21);
          const uint64_t n = p.base.size() / dtype_size(dt), cols = shape.back(), rows = n / cols;
          SCOPED_TRACE(text + " " + std::string(dtype_name(dt)) + " n=" + std::to_string(n) + " importance " +
                       std::to_string(static_cast<int>(kind)));
          const std::vector<float> delta = delta_of(p, n);
          std::vector<float> h = normal_vector(kind == Importance::Kind::PerElement ? n : cols, 5, 1.0f);
          for (float& x : h) x = std::fabs(x);
          const Importance imp{kind, h};
          // scope=model: the cut keeping 1% of this tensor's scores (with ties: bf16 δ repeats)
          std::vector<float> recon(n);
          Encoded alone;
          bitdelta_encode(*one_level_bitdelta(chain),
                          ValueStream{delta, dense_row_offsets(rows, cols), {}, recon.data()}, alone);
          const ScoreCut cut = magnitude_cut(cherry_scores(delta, recon, cols, imp), (n + 99) / 100);
          const ScoreCut* cut_ptr = r.cherry->scope_model ? &cut : nullptr;

          const Encoded want = reference(chain, r, delta, rows, cols, dt, imp, cut_ptr);
          // δ in memory
          const Encoded whole = encode_tensor(r, TensorDelta{"w", dt, shape, delta, imp, 1, cut_ptr});
          expect_same_parts(whole, want);
          // the fused pass from the pair: no tensor-sized δ
          const PreparedDelta prep = prepare_delta(r, p.base_view(), p.ft_view());
          ASSERT_TRUE(prep.stream);
          EXPECT_TRUE(prep.delta.empty());
          TensorPair pair;
          pair.name = "w", pair.base = p.base_view(), pair.ft = p.ft_view(), pair.recipe = &r;
          pair.prepared = &prep, pair.importance = imp, pair.cut = cut_ptr;
          const EncodedTensor fused = encode_tensor_pair(pair);
          expect_same_parts(fused.encoded, want);
          // the error from the passes themselves, against a decoded copy
          const ErrorNorms ref = error_norms(delta, decode_tensor(want.attrs, EncodedSource(want), shape, dt, "t"));
          EXPECT_NEAR(fused.encoded.err_sq, ref.err_sq, 1e-6 * ref.err_sq + 1e-30);
          EXPECT_NEAR(fused.stats.delta_sq, ref.delta_sq, 1e-12 * ref.delta_sq);
          EXPECT_NEAR(fused.stats.rel_error, std::sqrt(ref.err_sq / ref.delta_sq), 1e-6);
          if (!cut_ptr) continue;
          // scope=model, the cut's search having handed over what it keeps: no second read
          CutSelection sel;
          sel.positions = select_by_cut(cherry_scores(delta, recon, cols, imp), cut);
          for (uint64_t i : sel.positions) sel.values.push_back(delta[i]);
          const PreparedDelta prep2 = prepare_delta(r, p.base_view(), p.ft_view());
          ASSERT_TRUE(dynamic_cast<CherryBlockEncoder*>(prep2.stream.get()));
          // the pair handed over is the fine-tune twice (δ = 0): a second read would see no δ
          pair.base = p.ft_view();
          pair.prepared = &prep2, pair.selection = &sel;
          const EncodedTensor given = encode_tensor_pair(pair);
          expect_same_parts(given.encoded, want);
          EXPECT_EQ(given.encoded.err_sq, fused.encoded.err_sq);
        }
}

// The model-wide scores: the fused pass's (one more read of the pair) are the whole path's.
TEST(CherryStream, ModelScopeScoresFromThePair) {
  for (DType dt : {DType::BF16, DType::F32}) {
    const testing::TensorPairFixture p = make_tensor_pair({64, 300}, dt, 9);
    const Recipe r = parse_recipe("bitdelta:scale=row + cherry:frac=0.01,scope=model", 7);
    const std::vector<float> delta = delta_of(p, 64 * 300);
    const PreparedDelta prep = prepare_delta(r, p.base_view(), p.ft_view());
    ASSERT_TRUE(prep.stream);
    std::vector<float> got, got_delta;
    streamed_cherry_scores(p.base_view(), p.ft_view(), *prep.stream, {},
                           [&](std::span<const float> b, std::span<const float> d) {
                             ASSERT_EQ(b.size(), d.size());
                             got.insert(got.end(), b.begin(), b.end());
                             got_delta.insert(got_delta.end(), d.begin(), d.end());
                           });
    EXPECT_EQ(got_delta, delta);
    // the chain alone's reconstruction by bitdelta_encode, the scores by their definition
    std::vector<float> recon(delta.size());
    Encoded alone;
    bitdelta_encode(*one_level_bitdelta(parse_recipe("bitdelta:scale=row", 7)),
                    ValueStream{delta, dense_row_offsets(64, 300), {}, recon.data()}, alone);
    EXPECT_EQ(got, cherry_scores(delta, recon, 300, {}));
    EXPECT_EQ(got, model_scope_scores(r, TensorDelta{"w", dt, {64, 300}, delta, {}, 1, nullptr}));
  }
}

// The kept entries are exactly those at or above the floor, in order, and no more than 1.5
// times the target: with ties (bf16-like values, many zeros) and blocks of any size.
TEST(MagnitudeKept, HoldsEveryEntryAtOrAboveItsFloor) {
  const uint64_t n = 300000;
  std::vector<float> delta = normal_vector(n, 17, 1.0f);
  for (uint64_t i = 0; i < n; ++i) {
    if (i % 3 == 0) delta[i] = 0.0f;
    delta[i] = std::round(delta[i] * 64) / 64;  // few distinct magnitudes: ties at the floor
  }
  for (uint64_t block : {uint64_t{1}, uint64_t{97}, uint64_t{4096}, uint64_t{70000}, n})
    for (double fraction : {0.0, 0.03, 0.5}) {
      const uint64_t want = 20000;
      MagnitudeKept kept(want, fraction);
      for (uint64_t b = 0; b < n; b += block)
        kept.add(b, std::span<const float>(delta).subspan(b, std::min(block, n - b)));
      std::vector<uint32_t> expect;
      for (uint64_t i = 0; i < n; ++i)
        if (magnitude_bits(delta[i]) >= kept.floor()) expect.push_back(static_cast<uint32_t>(i));
      const auto got = kept.positions();
      SCOPED_TRACE("block " + std::to_string(block) + " fraction " + std::to_string(fraction));
      ASSERT_EQ(std::vector<uint32_t>(got.begin(), got.end()), expect);
      for (size_t j = 0; j < got.size(); ++j) ASSERT_EQ(kept.values()[j], delta[got[j]]);
      EXPECT_GT(kept.floor(), 0u);  // it did drop entries
      const uint64_t target = std::min<uint64_t>(want, static_cast<uint64_t>(fraction * n) + 1024);
      EXPECT_LE(2 * got.size(), 3 * target);
    }
}

// scope=model's scores from the statistics pass alone: at each kept position the score the
// second read gives, and every entry left out below complete_from — matrix, row and group
// scales, bf16 and f32, a third of δ zero (whose scores are α²).
TEST(CherryStream, KeptScoresBoundTheOthers) {
  for (const char* text :
       {"bitdelta + cherry:frac=0.01,scope=model", "bitdelta:scale=row + cherry:frac=0.02,scope=model",
        "bitdelta:scale=group:13 + cherry:frac=0.01,scope=model"})
    for (DType dt : {DType::BF16, DType::F32}) {
      SCOPED_TRACE(std::string(text) + " " + std::string(dtype_name(dt)));
      testing::TensorPairFixture p = make_tensor_pair({300, 700}, dt, 31);
      const uint64_t n = 300 * 700, w = dtype_size(dt);
      for (uint64_t i = 0; i < n; i += 3) std::memcpy(&p.ft[i * w], &p.base[i * w], w);  // unchanged
      const Recipe r = parse_recipe(text, 7);
      const PreparedDelta prep = prepare_delta(r, p.base_view(), p.ft_view());
      auto* cherry = dynamic_cast<CherryBlockEncoder*>(prep.stream.get());
      ASSERT_TRUE(cherry);
      ASSERT_TRUE(cherry->has_kept_scores());
      std::vector<uint64_t> at;
      std::vector<float> scores, values;
      uint32_t from = 0;
      cherry->kept_scores([&](uint64_t count, std::span<const uint64_t> pos, std::span<const float> sc,
                              std::span<const float> val, uint32_t complete_from) {
        EXPECT_EQ(count, n);
        at.insert(at.end(), pos.begin(), pos.end());
        scores.insert(scores.end(), sc.begin(), sc.end());
        values.insert(values.end(), val.begin(), val.end());
        from = complete_from;
      });
      EXPECT_FALSE(cherry->has_kept_scores());
      std::vector<float> all, delta;
      streamed_cherry_scores(p.base_view(), p.ft_view(), *cherry, {},
                             [&](std::span<const float> b, std::span<const float> d) {
                               all.insert(all.end(), b.begin(), b.end());
                               delta.insert(delta.end(), d.begin(), d.end());
                             });
      ASSERT_TRUE(std::is_sorted(at.begin(), at.end()));
      EXPECT_LT(at.size(), n / 10);  // it kept a few percent
      EXPECT_GT(from, 0u);
      std::vector<uint8_t> given(n, 0);
      for (size_t j = 0; j < at.size(); ++j) {
        ASSERT_EQ(scores[j], all[at[j]]) << at[j];
        ASSERT_EQ(values[j], delta[at[j]]) << at[j];
        given[at[j]] = 1;
      }
      for (uint64_t i = 0; i < n; ++i) {
        if (!given[i]) {
          ASSERT_LT(score_key(all[i]), from) << i;
        }
      }
      // and, with a scale per tensor or per row, the 1% a model-wide cut of this tensor alone
      // keeps lies above it. (With groups of 13 a near-zero δ in the group of largest α may truly
      // score among the top: the bound is α² there, and the cut rescores such a tensor.)
      if (std::string(text).find("group") == std::string::npos) {
        std::vector<uint32_t> keys;
        for (float x : all) keys.push_back(score_key(x));
        std::nth_element(keys.begin(), keys.begin() + n / 100, keys.end(), std::greater<uint32_t>());
        EXPECT_GE(keys[n / 100], from);
      }
    }
}

}  // namespace
}  // namespace deltakit
