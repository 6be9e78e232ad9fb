#include "src/edits/delta_edits.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "src/codec/recipe.h"
#include "src/codec/score_cut.h"
#include "src/codec/tensor_codec.h"
#include "src/core/error.h"
#include "src/core/philox.h"

namespace deltakit {

namespace {

std::string number(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

// D for one matrix, from its ΔW.
void edit_matrix(const DeltaEdit& e, const ParamSlice& s, std::span<const float> dw, std::span<const float> grad,
                 std::span<float> d) {
  const uint64_t n = s.numel;
  auto bernoulli_mask = [&](std::vector<uint8_t>& m) {
    const TensorRng rng(e.seed, s.name);
    const uint64_t threshold = TensorRng::drop_threshold(e.p);
    std::vector<uint32_t> w(n);
    rng.words(0, n, w.data());
    for (uint64_t i = 0; i < n; ++i) m[i] = w[i] < threshold;
  };
  auto extension = [&](const std::vector<uint8_t>& m, double p) {  // D = (k − 1)(M − p)/(1 − p) ⊙ ΔW
    if (p >= 1.0) p = 1.0 - 1e-12;
    for (uint64_t i = 0; i < n; ++i) d[i] = static_cast<float>((e.k - 1.0) * (m[i] - p) / (1.0 - p) * dw[i]);
  };
  double mean_abs = 0;
  for (float x : dw) mean_abs += std::fabs(x);
  mean_abs /= static_cast<double>(std::max<uint64_t>(n, 1));
  std::vector<uint8_t> m(n);
  if (e.kind == "dare") {
    bernoulli_mask(m);
    extension(m, e.p);
  } else if (e.kind == "dare_sign" || e.kind == "dare_grad") {
    uint64_t ones = 0;
    for (uint64_t i = 0; i < n; ++i) ones += m[i] = e.kind == "dare_sign" ? dw[i] > 0 : dw[i] * grad[i] > 0;
    extension(m, static_cast<double>(ones) / static_cast<double>(n));
  } else if (e.kind == "drop_only") {
    bernoulli_mask(m);
    for (uint64_t i = 0; i < n; ++i) d[i] = m[i] ? -dw[i] : 0.0f;
  } else if (e.kind == "magnitude") {  // the TIES trim's cut: keep the n − floor(p·n) largest |ΔW|
    const uint64_t drop = static_cast<uint64_t>(std::floor(e.p * static_cast<double>(n)));
    ScoreCut cut = magnitude_cut(dw, n - drop);
    for (uint64_t i = 0; i < n; ++i) d[i] = cut.keep(magnitude_key(dw[i])) ? 0.0f : -dw[i];
  } else if (e.kind == "bitdelta") {
    const double a = e.m * mean_abs;
    for (uint64_t i = 0; i < n; ++i) d[i] = static_cast<float>((dw[i] >= 0 ? a : -a) - dw[i]);
  } else if (e.kind == "bitdelta_random") {
    const TensorRng rng(e.seed, s.name);
    for (uint64_t i = 0; i < n; ++i) {
      // half-normal |z|·μ·sqrt(π/2) or uniform on [0, 2μ]: both have mean μ
      const double mag = e.dist == "normal" ? std::fabs(rng.normal(i)) * mean_abs * std::sqrt(M_PI / 2.0)
                                            : 2.0 * mean_abs * (static_cast<double>(rng.word(i)) * 0x1p-32);
      d[i] = static_cast<float>((dw[i] >= 0 ? mag : -mag) - dw[i]);
    }
  } else {  // a codec: bitdelta_levels, lowrank
    const std::string recipe = e.kind == "lowrank" ? "lowrank:rank=" + std::to_string(e.rank)
                                                   : "bitdelta:levels=" + std::to_string(int64_t{1} << (e.bits - 1));
    const Recipe r = parse_recipe(recipe);
    const TensorDelta t{s.name, DType::F32, s.shape, dw, {}, 0, nullptr};
    const Encoded enc = encode_tensor(r, t);
    const std::vector<float> recon = decode_tensor(enc.attrs, EncodedSource(enc), s.shape, DType::F32, s.name);
    for (uint64_t i = 0; i < n; ++i) d[i] = recon[i] - dw[i];
  }
}

}  // namespace

std::string DeltaEdit::text() const {
  if (kind == "dare") return "dare:p=" + number(p) + ",k=" + number(k);
  if (kind == "dare_sign" || kind == "dare_grad") return kind + ":k=" + number(k);
  if (kind == "drop_only" || kind == "magnitude") return kind + ":p=" + number(p);
  if (kind == "bitdelta") return "bitdelta:m=" + number(m);
  if (kind == "bitdelta_random") return "bitdelta_random:dist=" + dist;
  if (kind == "bitdelta_levels") return "bitdelta_levels:bits=" + std::to_string(bits);
  if (kind == "lowrank") return "lowrank:rank=" + std::to_string(rank);
  if (kind == "model") return label.empty() ? "model:path=" + path : "model:label=" + label;
  return "expo:alpha=" + number(alpha);
}

DeltaEdit parse_delta_edit(const std::string& text) {
  DeltaEdit e;
  const size_t colon = text.find(':');
  e.kind = text.substr(0, colon);
  static const char* kinds[] = {"dare",     "dare_sign",       "dare_grad",       "drop_only", "magnitude",
                                "bitdelta", "bitdelta_random", "bitdelta_levels", "lowrank",   "expo",
                                "model"};
  if (std::find(std::begin(kinds), std::end(kinds), e.kind) == std::end(kinds))
    throw Error(ErrorCode::Usage, "", "unknown edit \"" + e.kind + "\" in \"" + text + "\"");
  std::string rest = colon == std::string::npos ? "" : text.substr(colon + 1);
  std::istringstream in(rest);
  for (std::string kv; std::getline(in, kv, ',');) {
    const size_t eq = kv.find('=');
    const std::string key = kv.substr(0, eq), value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    auto num = [&]() {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(value, &used);
      } catch (const std::exception&) {
      }
      if (used != value.size() || value.empty() || !std::isfinite(v))
        throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": " + key + " needs a number");
      return v;
    };
    if (key == "p")
      e.p = num();
    else if (key == "k")
      e.k = num();
    else if (key == "m")
      e.m = num();
    else if (key == "alpha")
      e.alpha = num();
    else if (key == "rank")
      e.rank = static_cast<int64_t>(num());
    else if (key == "bits")
      e.bits = static_cast<int64_t>(num());
    else if (key == "seed")
      e.seed = static_cast<uint64_t>(num());
    else if (key == "dist")
      e.dist = value;
    else if (key == "path" && e.kind == "model")
      e.path = value;
    else if (key == "label" && e.kind == "model")
      e.label = value;
    else
      throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": unknown key \"" + key + "\"");
  }
  if (e.p < 0 || e.p > 1) throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": p must be in [0, 1]");
  if ((e.kind == "dare" || e.kind == "drop_only") && e.p >= 1)
    throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": p must be below 1");
  if (e.bits < 1 || e.bits > 8) throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": bits must be 1..8");
  if (e.rank < 1) throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": rank must be >= 1");
  if (e.kind == "model" && e.path.empty())
    throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": a model edit needs path=DIR");
  if (e.dist != "normal" && e.dist != "uniform")
    throw Error(ErrorCode::Usage, "", "edit \"" + text + "\": dist must be normal or uniform");
  return e;
}

bool is_edited_matrix(const ParamSlice& s) {
  return s.shape.size() == 2 && s.name.find("_proj.weight") != std::string::npos;
}

std::vector<float> edit_direction(const DeltaEdit& e, const LlamaParams& pre, const LlamaParams& post,
                                  const std::vector<float>* grad_post) {
  if (e.kind == "dare_grad" && (!grad_post || grad_post->size() != post.data().size()))
    throw Error(ErrorCode::InvalidValue, "", "dare_grad needs the gradient at W_post");
  std::vector<float> d(post.data().size(), 0.0f), dw;
  LlamaParams other;  // a model edit's checkpoint
  if (e.kind == "model") {
    other = load_llama(e.path);
    require_same_layout(post, other, e.path, "the fine-tune it edits");
  }
  for (const ParamSlice& s : post.slices()) {
    if (!is_edited_matrix(s)) continue;
    std::span<float> out(d.data() + s.offset, s.numel);
    if (e.kind == "model") {
      for (uint64_t i = 0; i < s.numel; ++i) out[i] = other.data()[s.offset + i] - post.data()[s.offset + i];
      continue;
    }
    dw.resize(s.numel);
    for (uint64_t i = 0; i < s.numel; ++i) dw[i] = post.data()[s.offset + i] - pre.data()[s.offset + i];
    if (e.kind == "expo") {
      for (uint64_t i = 0; i < s.numel; ++i) out[i] = static_cast<float>(e.alpha) * dw[i];
      continue;
    }
    const std::span<const float> g =
        grad_post ? std::span<const float>(grad_post->data() + s.offset, s.numel) : std::span<const float>();
    edit_matrix(e, s, dw, g, out);
  }
  return d;
}

}  // namespace deltakit
