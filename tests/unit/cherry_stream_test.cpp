// A cherry recipe's fused pass (src/codec/cherry_stream.h) against the two-pass definition built
// from the codec's own public steps: the chain alone's reconstruction, the scores, the selection
// (cherry_select per row, select_by_cut for a model-wide cut), the chain refitted with the
// cherries skipped. Same attributes and parts, byte for byte, from a bf16/f16/f32 pair (the
// fused pass) and from δ in memory (encode_tensor); the error within 1e-6 of a decoded copy's.
#include "src/codec/cherry_stream.h"

#include <gtest/gtest.h>

#include <cmath>

#include "src/codec/bitdelta.h"
#include "src/codec/codec.h"
#include "src/codec/error_norms.h"
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

}  // namespace
}  // namespace deltakit
