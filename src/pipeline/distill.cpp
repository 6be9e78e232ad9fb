#include "src/pipeline/distill.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "formats/adapter_h5.h"
#include "formats/checkpoint.h"
#include "src/codec/recipe.h"
#include "src/codec/tensor_codec.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/eval/calibration.h"
#include "src/model/llama_model.h"
#include "src/pipeline/apply.h"

namespace deltakit {

namespace {

// An adapter tensor's parts with bitdelta.scales replaced, to decode under other scales.
class ScalesOverride : public PartSource {
 public:
  ScalesOverride(const PartSource& inner, std::span<const float> scales) : inner_(inner), scales_(scales) {}
  bool has(const std::string& part) const override { return inner_.has(part); }
  std::vector<std::string> names() const override { return inner_.names(); }
  std::vector<uint8_t> read(const std::string& part, PartKind kind, const std::vector<uint64_t>& dims,
                            const std::string& encoding) const override {
    std::vector<uint8_t> b = inner_.read(part, kind, dims, encoding);
    if (part == "bitdelta.scales" && b.size() == scales_.size() * 4) std::memcpy(b.data(), scales_.data(), b.size());
    return b;
  }

 private:
  const PartSource& inner_;
  std::span<const float> scales_;
};

// One distilled tensor: W_i = base_i + fixed_i + α[unit_i] · sign_i, where fixed holds the
// cherries (0 elsewhere) and sign_i is 0 on cherries.
struct ScaledTensor {
  std::string name;
  uint64_t offset = 0;  // in the model's parameter layout
  std::vector<float> base, fixed;
  std::vector<int8_t> sign;
  std::vector<uint32_t> unit;
  uint64_t first_scale = 0, scales = 0;  // its α in the model-wide vector
};

bool distillable(const Json& attrs) {
  if (!attrs.contains("recipe") || !attrs["recipe"].is_string()) return false;
  const Recipe r = parse_recipe(attrs["recipe"].get<std::string>());
  return r.chain.size() == 1 && r.chain[0]->fittable_scales();
}

// The decode of tensor `name` with its scales replaced by `scales`.
std::vector<float> decode_with(const AdapterReader& ad, const std::string& name, std::span<const float> scales) {
  const AdapterTensorSource src = ad.source(name);
  ScalesOverride over(src, scales);
  return decode_tensor(ad.attrs(name), over, ad.shape(name), ad.dtype(name), ad.where(name));
}

ScaledTensor split_scaled(const AdapterReader& ad, const std::string& name, const ParamSlice& slice,
                          const std::vector<float>& base_values, std::vector<float>& alpha) {
  ScaledTensor t;
  t.name = name, t.offset = slice.offset;
  const uint64_t U = ad.attrs(name).value("bitdelta.units", uint64_t{0});
  const std::vector<uint8_t> stored = ad.source(name).read("bitdelta.scales", PartKind::F32, {U, 1}, "");
  std::vector<float> scales(U);
  std::memcpy(scales.data(), stored.data(), stored.size());
  // Decoding under α = 0 leaves the cherries alone; under α_u = u + 1 every other entry's
  // magnitude names its unit (exact in fp32 below 2^24 units) and its sign is the stored bit.
  std::vector<float> zeros(U, 0.0f), ids(U);
  if (U >= (1u << 24)) throw Error(ErrorCode::Usage, ad.where(name), "too many scale units to distill");
  for (uint64_t u = 0; u < U; ++u) ids[u] = static_cast<float>(u + 1);
  t.fixed = decode_with(ad, name, zeros);
  const std::vector<float> tagged = decode_with(ad, name, ids);
  const uint64_t n = slice.numel;
  t.sign.resize(n), t.unit.resize(n);
  for (uint64_t i = 0; i < n; ++i) {
    const float d = tagged[i] - t.fixed[i];
    t.sign[i] = d > 0 ? 1 : d < 0 ? -1 : 0;
    t.unit[i] = d == 0 ? 0 : static_cast<uint32_t>(std::lround(std::fabs(d))) - 1;
  }
  t.base.assign(base_values.begin() + slice.offset, base_values.begin() + slice.offset + n);
  t.first_scale = alpha.size(), t.scales = U;
  alpha.insert(alpha.end(), scales.begin(), scales.end());
  return t;
}

void write_weights(const ScaledTensor& t, const std::vector<float>& alpha, std::vector<float>& params) {
  const float* a = alpha.data() + t.first_scale;
  float* w = params.data() + t.offset;
  for (size_t i = 0; i < t.base.size(); ++i) w[i] = t.base[i] + t.fixed[i] + a[t.unit[i]] * t.sign[i];
}

}  // namespace

DistillReport distill_scales(const DistillOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.steps < 1 || o.batch < 1 || (o.seq_len != 0 && o.seq_len < 2) || o.eval_batches < 1 || !(o.lr > 0))
    throw Error(ErrorCode::Usage, "", "distillation needs steps, batch, eval batches >= 1, seq_len >= 2 and lr > 0");
  check_output_file_path(o.out, std::vector<std::string>{o.adapter, o.base, o.finetuned}, o.overwrite);
  const AdapterReader ad(o.adapter);
  if (std::none_of(ad.names().begin(), ad.names().end(),
                   [&](const std::string& n) { return distillable(ad.attrs(n)); }))
    throw Error(ErrorCode::Usage, o.out,
                "nothing to distill: no tensor is coded by bitdelta alone (with or without cherry)");
  const Checkpoint base_ck(o.base);
  check_adapter_matches_base(base_ck, ad);
  const LlamaParams teacher = load_llama(o.finetuned);
  LlamaParams student = load_llama(o.base);
  const LlamaConfig& c = student.config();
  require_same_layout(student, teacher, o.finetuned, "the base " + o.base);
  const int64_t seq_len = o.seq_len ? o.seq_len : std::min<int64_t>(128, static_cast<int64_t>(c.max_seq));
  if (seq_len > static_cast<int64_t>(c.max_seq))
    throw Error(ErrorCode::Usage, "",
                "the distillation length " + std::to_string(seq_len) + " exceeds the model's context of " +
                    std::to_string(c.max_seq));
  DistillReport rep;
  const std::vector<float> base_values = student.data();
  std::vector<ScaledTensor> scaled;
  std::vector<float> alpha;
  for (const std::string& name : ad.names()) {
    const ParamSlice* slice = student.find(name);
    if (!slice) continue;  // not a parameter of the engine (a rotary cache)
    if (distillable(ad.attrs(name))) {
      scaled.push_back(split_scaled(ad, name, *slice, base_values, alpha));
      continue;
    }
    std::vector<uint8_t> bytes;
    const TensorView bv = base_ck.view(name);
    apply_adapter_tensor(ad, bv, 1.0f, false, o.base, bytes, rep.warnings);
    decode_to_f32(bv.dtype, bytes, 0, {student.data().data() + slice->offset, slice->numel});
  }
  if (scaled.empty()) throw Error(ErrorCode::Usage, o.out, "nothing to distill: no bitdelta tensor is a model weight");
  rep.tensors = scaled.size(), rep.scales = alpha.size();
  for (const auto& t : scaled) write_weights(t, alpha, student.data());

  const BatchFn calibration = calibration_batches(o.calibration, c.vocab);
  LlamaModel tm(c), sm(c);
  std::vector<float> grads(student.data().size()), target, dlogits;
  Batch b;
  b.B = o.batch, b.T = seq_len;
  const int64_t M = b.B * b.T, V = static_cast<int64_t>(c.vocab);
  // ‖z_student − z_teacher‖² summed over the vocabulary, mean over positions; fills dlogits
  auto loss_on = [&](int64_t step, bool grad) {
    calibration(b, step);
    const float* zt = tm.forward_logits(teacher.view(), b.tokens.data(), b.B, b.T);
    target.assign(zt, zt + M * V);
    const float* zs = sm.forward_logits(student.view(), b.tokens.data(), b.B, b.T);
    double sum = 0;
    if (grad) dlogits.resize(static_cast<size_t>(M * V));
    for (int64_t i = 0; i < M * V; ++i) {
      const float d = zs[i] - target[i];
      sum += static_cast<double>(d) * d;
      if (grad) dlogits[i] = 2.0f * d / static_cast<float>(M);
    }
    return sum / static_cast<double>(M);
  };
  // held-out batches: steps far past any training step
  constexpr int64_t kHeldOut = int64_t{1} << 40;
  auto held_out = [&] {
    double s = 0;
    for (int64_t k = 0; k < o.eval_batches; ++k) s += loss_on(kHeldOut + k, false);
    return s / static_cast<double>(o.eval_batches);
  };
  rep.loss_before = held_out();

  // Adam (β 0.9/0.999, ε 1e-8, no weight decay: Hugging Face's defaults), cosine decay to 0
  std::vector<double> m1(alpha.size(), 0.0), m2(alpha.size(), 0.0), ga(alpha.size());
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  for (int64_t step = 0; step < o.steps; ++step) {
    rep.train_losses.push_back(static_cast<float>(loss_on(step, true)));
    std::fill(grads.begin(), grads.end(), 0.0f);
    sm.backward_from_logits(student.view(), student.bind(grads.data()), dlogits.data());
    std::fill(ga.begin(), ga.end(), 0.0);
    for (const auto& t : scaled) {
      const float* g = grads.data() + t.offset;
      double* out = ga.data() + t.first_scale;
      for (size_t i = 0; i < t.sign.size(); ++i) out[t.unit[i]] += static_cast<double>(g[i]) * t.sign[i];
    }
    const double lr = o.lr * 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(o.steps)));
    const double c1 = 1.0 - std::pow(b1, step + 1), c2 = 1.0 - std::pow(b2, step + 1);
    for (size_t u = 0; u < alpha.size(); ++u) {
      m1[u] = b1 * m1[u] + (1 - b1) * ga[u];
      m2[u] = b2 * m2[u] + (1 - b2) * ga[u] * ga[u];
      alpha[u] = static_cast<float>(alpha[u] - lr * (m1[u] / c1) / (std::sqrt(m2[u] / c2) + eps));
    }
    for (const auto& t : scaled) write_weights(t, alpha, student.data());
  }
  rep.loss_after = held_out();

  // The adapter again, with the new scales and each distilled tensor's error against the fine-tune.
  Json summary = Json::object();
  summary["calibration"] = o.calibration, summary["steps"] = o.steps, summary["batch"] = o.batch;
  summary["seq_len"] = seq_len, summary["lr"] = o.lr, summary["loss_before"] = rep.loss_before;
  summary["loss_after"] = rep.loss_after, summary["tensors"] = rep.tensors, summary["scales"] = rep.scales;
  AdapterWriter w(o.out);
  size_t next = 0;
  for (const std::string& name : ad.names()) {
    if (next == scaled.size() || scaled[next].name != name) {
      w.copy_tensor(ad, name);
      continue;
    }
    const ScaledTensor& t = scaled[next++];
    const float* a = alpha.data() + t.first_scale;
    double err = 0, norm = 0;
    for (size_t i = 0; i < t.base.size(); ++i) {
      const double delta = static_cast<double>(teacher.data()[t.offset + i]) - t.base[i];
      const double recon = static_cast<double>(t.fixed[i]) + static_cast<double>(a[t.unit[i]]) * t.sign[i];
      err += (delta - recon) * (delta - recon), norm += delta * delta;
    }
    Json attrs = ad.attrs(name);
    attrs["rel_error"] = rep.rel_error[name] = norm > 0 ? std::sqrt(err / norm) : 0.0;
    attrs["bitdelta.distilled"] = 1;  // (HDF5 attributes here hold no booleans)
    std::vector<float> fitted(a, a + t.scales);
    w.copy_tensor(
        ad, name, attrs,
        {{"bitdelta.scales", PartKind::F32, {t.scales, 1}, bytes_of<float>(std::span<const float>(fitted)), ""}});
  }
  Json root = ad.root();
  root.erase("format"), root.erase("format_version");  // commit() writes them
  root["distillation"] = summary.dump();
  w.commit(root, ad.side_files());
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
