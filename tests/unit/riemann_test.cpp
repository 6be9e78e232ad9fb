// Delta edits (src/edits/delta_edits.h) against their definitions and the codecs they mirror, and
// the Riemann estimate of the loss change (src/edits/riemann.h): its first term is the directional
// derivative (checked by finite differences) and its error shrinks like 1/C.
#include "src/edits/riemann.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "src/codec/recipe.h"
#include "src/codec/sparse.h"
#include "src/codec/tensor_codec.h"
#include "src/core/error.h"
#include "src/edits/delta_edits.h"

namespace deltakit {
namespace {

namespace fs = std::filesystem;

struct Pair {
  LlamaParams pre, post;
};

Pair tiny_pair() {
  LlamaConfig c;
  c.vocab = 11, c.dim = 16, c.hidden = 24, c.layers = 2, c.heads = 4, c.kv_heads = 2, c.head_dim = 4, c.max_seq = 8;
  Pair p{LlamaParams(c), LlamaParams(c)};
  p.pre.init_random(3);
  for (auto& x : p.pre.data()) x *= 5.0f;
  for (const auto& s : p.pre.slices())
    if (s.is_norm) std::fill_n(p.pre.data().begin() + static_cast<int64_t>(s.offset), s.numel, 1.0f);
  LlamaParams noise(c);
  noise.init_random(4);
  p.post = p.pre;
  for (size_t i = 0; i < noise.data().size(); ++i) p.post.data()[i] += 3.0f * noise.data()[i];
  return p;
}

std::vector<Batch> tiny_data() {
  Batch b;
  b.B = 2, b.T = 6;
  b.tokens = {1, 5, 9, 2, 0, 4, 10, 3, 3, 7, 4, 8};
  b.targets = {5, 9, 2, 0, 4, 6, 3, 3, 7, 4, 8, -1};
  return {b};
}

TEST(DeltaEdits, DareExtensionAtKZeroIsTheDareCodec) {
  const Pair m = tiny_pair();
  const DeltaEdit e = parse_delta_edit("dare:p=0.3,k=0,seed=7");
  const std::vector<float> d = edit_direction(e, m.pre, m.post);
  DareParams prm;
  prm.p = 0.3, prm.seed = 7;
  for (const auto& s : m.post.slices()) {
    if (!is_edited_matrix(s)) {
      for (uint64_t i = 0; i < s.numel; ++i) EXPECT_EQ(d[s.offset + i], 0.0f) << s.name;
      continue;
    }
    std::vector<float> dw(s.numel), want(s.numel, 0.0f);
    for (uint64_t i = 0; i < s.numel; ++i) dw[i] = m.post.data()[s.offset + i] - m.pre.data()[s.offset + i];
    const SparseSelection sel = dare_select(prm, s.name, dw, {});
    for (size_t j = 0; j < sel.positions.size(); ++j) want[sel.positions[j]] = sel.values[j];
    for (uint64_t i = 0; i < s.numel; ++i)  // W_post + D − W_pre = the DARE reconstruction
      EXPECT_NEAR(dw[i] + d[s.offset + i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << s.name << " " << i;
  }
}

TEST(DeltaEdits, DefinitionsHold) {
  const Pair m = tiny_pair();
  const auto& s = *m.post.find("model.layers.1.mlp.up_proj.weight");
  std::vector<float> dw(s.numel);
  for (uint64_t i = 0; i < s.numel; ++i) dw[i] = m.post.data()[s.offset + i] - m.pre.data()[s.offset + i];
  auto d_of = [&](const std::string& text) {
    const auto d = edit_direction(parse_delta_edit(text), m.pre, m.post);
    return std::vector<float>(d.begin() + static_cast<int64_t>(s.offset),
                              d.begin() + static_cast<int64_t>(s.offset + s.numel));
  };
  // k = 1 keeps W_post whatever the mask; EXPO scales ΔW
  for (float x : d_of("dare:p=0.6,k=1")) EXPECT_NEAR(x, 0.0f, 1e-6f);
  for (float x : d_of("dare_sign:k=1")) EXPECT_NEAR(x, 0.0f, 1e-6f);
  auto expo = d_of("expo:alpha=-0.25");
  for (uint64_t i = 0; i < s.numel; ++i) EXPECT_FLOAT_EQ(expo[i], -0.25f * dw[i]);
  // magnitude: exactly floor(p·n) of the smallest |ΔW| removed
  auto mag = d_of("magnitude:p=0.5");
  uint64_t dropped = 0;
  float largest_dropped = 0, smallest_kept = 1e30f;
  for (uint64_t i = 0; i < s.numel; ++i)
    if (mag[i] != 0)
      ++dropped, largest_dropped = std::max(largest_dropped, std::fabs(dw[i]));
    else
      smallest_kept = std::min(smallest_kept, std::fabs(dw[i]));
  EXPECT_EQ(dropped, s.numel / 2);
  EXPECT_LE(largest_dropped, smallest_kept);
  // bitdelta m: W_post + D − W_pre = m·mean|ΔW|·sign(ΔW)
  double mean = 0;
  for (float x : dw) mean += std::fabs(x);
  mean /= static_cast<double>(s.numel);
  auto bd = d_of("bitdelta:m=2");
  for (uint64_t i = 0; i < s.numel; ++i)
    EXPECT_NEAR(dw[i] + bd[i], (dw[i] >= 0 ? 2.0 : -2.0) * mean, 1e-5 * (1 + 2 * mean));
  // random magnitudes keep the signs and, on average, the mean
  auto rnd = d_of("bitdelta_random:dist=uniform");
  double rmean = 0;
  for (uint64_t i = 0; i < s.numel; ++i) {
    const float w = dw[i] + rnd[i];
    EXPECT_TRUE((w >= 0) == (dw[i] >= 0) || w == 0) << i;
    rmean += std::fabs(w);
  }
  EXPECT_NEAR(rmean / static_cast<double>(s.numel), mean, 0.15 * mean);
  EXPECT_THROW(parse_delta_edit("dare:p=1"), std::exception);
  EXPECT_THROW(parse_delta_edit("bitdelta:q=1"), std::exception);
}

TEST(DeltaEdits, ModelEditIsTheOtherCheckpointsProjections) {
  const Pair m = tiny_pair();
  LlamaParams other = m.pre;  // any checkpoint of the same shapes: here W_pre + 0.5·ΔW
  for (size_t i = 0; i < other.data().size(); ++i) other.data()[i] += 0.5f * (m.post.data()[i] - m.pre.data()[i]);
  const fs::path dir = fs::temp_directory_path() / ("dk_model_edit_" + std::to_string(::getpid()));
  save_llama(other, dir.string(), DType::F32, true);
  const DeltaEdit e = parse_delta_edit("model:path=" + dir.string() + ",label=half");
  EXPECT_EQ(e.text(), "model:label=half");
  const std::vector<float> d = edit_direction(e, m.pre, m.post);
  const std::vector<float> expo = edit_direction(parse_delta_edit("expo:alpha=-0.5"), m.pre, m.post);
  for (const auto& s : m.post.slices())
    for (uint64_t i = s.offset; i < s.offset + s.numel; ++i) {
      if (!is_edited_matrix(s)) {
        ASSERT_EQ(d[i], 0.0f) << s.name;  // only the edited matrices, as every other edit
        continue;
      }
      ASSERT_EQ(d[i], other.data()[i] - m.post.data()[i]) << s.name;
      ASSERT_NEAR(d[i], expo[i], 1e-5f * (1.0f + std::fabs(expo[i]))) << s.name;
    }
  // another shape is refused, naming the folder
  LlamaConfig c = m.post.config();
  c.hidden = 32;
  LlamaParams wide(c);
  save_llama(wide, dir.string(), DType::F32, true);
  try {
    edit_direction(e, m.pre, m.post);
    ADD_FAILURE() << "a checkpoint of other shapes was taken";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find(dir.string()), std::string::npos) << err.what();
  }
  fs::remove_all(dir);
  EXPECT_THROW(parse_delta_edit("model:label=x"), std::exception);  // no path
  EXPECT_THROW(parse_delta_edit("dare:p=0.5,path=x"), std::exception);
}

TEST(Riemann, FirstTermIsTheDirectionalDerivativeAndErrorShrinksWithC) {
  const Pair m = tiny_pair();
  const auto data = tiny_data();
  const std::vector<float> d = edit_direction(parse_delta_edit("bitdelta:m=1"), m.pre, m.post);
  // ⟨∇L(W_post), D⟩ against (L(W_post + εD) − L(W_post − εD)) / 2ε
  std::vector<float> grad;
  loss_on_batches(m.post, data, &grad);
  double dot = 0;
  for (size_t i = 0; i < d.size(); ++i) dot += static_cast<double>(grad[i]) * d[i];
  auto loss_at = [&](float t) {
    LlamaParams w = m.post;
    for (size_t i = 0; i < d.size(); ++i) w.data()[i] += t * d[i];
    return loss_on_batches(w, data);
  };
  const float eps = 1e-3f;
  EXPECT_NEAR(dot, (loss_at(eps) - loss_at(-eps)) / (2.0 * eps), 2e-3 * std::max(1.0, std::fabs(dot)));

  const RiemannReport r = riemann_loss_change(m.post, d, data, {1, 2, 5, 10, 40});
  EXPECT_NEAR(r.delta, loss_at(1.0f) - loss_at(0.0f), 1e-9);
  EXPECT_DOUBLE_EQ(r.estimate[0], dot);
  std::vector<double> err;
  for (double e : r.estimate) err.push_back(std::fabs(e - r.delta));
  ASSERT_GT(err[0], 1e-3) << "the edit is too linear to test convergence";
  EXPECT_LT(err[4], err[3]);
  EXPECT_LT(err[3], err[1]);
  EXPECT_LT(err[4], 0.1 * err[0]);  // left Riemann sums: error ~ 1/C
}

}  // namespace
}  // namespace deltakit
