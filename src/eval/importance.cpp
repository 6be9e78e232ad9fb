#include "src/eval/importance.h"


#include "formats/safetensors.h"
#include "src/core/atomic_output.h"
#include "src/eval/batches.h"
#include "src/model/llama_model.h"
#include "src/model/tokenizer.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
void check(const ImportanceOptions& o) {
  if (o.samples < 1 || o.seq_len < 2 || o.batch < 1)
    throw Error(ErrorCode::InvalidValue, "", "importance needs samples >= 1, seq_len >= 2 and batch >= 1");
}
}  // namespace

std::vector<ImportanceTensor> fisher_diagonal(const LlamaParams& p, const BatchFn& calibration,
                                              const ImportanceOptions& o) {
  check(o);
  LlamaModel m(p.config());
  const ModelWeights w = p.view();
  std::vector<float> grad(p.data().size()), fisher(p.data().size(), 0.0f);
  const ModelWeights g = p.bind(grad.data());
  Batch b;
  b.B = 1, b.T = o.seq_len;
  for (int64_t s = 0; s < o.samples; ++s) {
    calibration(b, s);
    std::fill(grad.begin(), grad.end(), 0.0f);
    m.forward(w, b.tokens.data(), b.targets.data(), 1, b.T);
    if (!m.counted()) continue;  // a sequence with no loss has zero gradient
    m.backward(w, g, static_cast<float>(o.seq_len));
    const float inv = 1.0f / static_cast<float>(o.samples);
    for (size_t i = 0; i < grad.size(); ++i) fisher[i] += grad[i] * grad[i] * inv;
  }
  std::vector<ImportanceTensor> out;
  for (const ParamSlice& s : p.slices())
    out.push_back({s.name, s.shape, {fisher.begin() + s.offset, fisher.begin() + s.offset + s.numel}});
  return out;
}

std::vector<ImportanceTensor> activation_second_moments(const LlamaParams& p, const BatchFn& calibration,
                                                        const ImportanceOptions& o) {
  check(o);
  const LlamaConfig& c = p.config();
  const int64_t D = c.dim, Q = c.q_dim(), F = c.hidden;
  // One accumulator per distinct input: q/k/v share theirs, gate/up theirs.
  struct Acc {
    std::vector<double> attn, attn_out, mlp, mlp_act;
  };
  std::vector<Acc> acc(
      c.layers, Acc{std::vector<double>(D), std::vector<double>(Q), std::vector<double>(D), std::vector<double>(F)});
  std::vector<double> head(D);
  uint64_t positions = 0;
  LlamaModel m(c);
  const ModelWeights w = p.view();
  const bool byte_vocab = c.vocab == ByteTokenizer::kVocab;
  auto add = [](std::vector<double>& sum, const float* x, int64_t row, int64_t n) {
    const float* r = x + row * n;
    for (int64_t i = 0; i < n; ++i) sum[i] += static_cast<double>(r[i]) * r[i];
  };
  Batch b;
  for (int64_t first = 0; first < o.samples; first += o.batch) {
    b.B = std::min(o.batch, o.samples - first), b.T = o.seq_len;
    Batch one;
    one.B = 1, one.T = o.seq_len;
    b.tokens.resize(static_cast<size_t>(b.B * b.T));
    b.targets.resize(b.tokens.size());
    for (int64_t r = 0; r < b.B; ++r) {  // sequence s is step s, whatever the batch size
      calibration(one, first + r);
      std::copy(one.tokens.begin(), one.tokens.end(), b.tokens.begin() + r * b.T);
      std::copy(one.targets.begin(), one.targets.end(), b.targets.begin() + r * b.T);
    }
    m.forward(w, b.tokens.data(), b.targets.data(), b.B, b.T);
    for (int64_t row = 0; row < b.B * b.T; ++row) {
      if (byte_vocab && b.tokens[row] == ByteTokenizer::kPad) continue;
      ++positions;
      for (size_t l = 0; l < acc.size(); ++l) {
        const LlamaModel::LinearInputs in = m.linear_inputs(l);
        add(acc[l].attn, in.attn, row, D), add(acc[l].attn_out, in.attn_out, row, Q);
        add(acc[l].mlp, in.mlp, row, D), add(acc[l].mlp_act, in.mlp_act, row, F);
      }
      add(head, m.head_input(), row, D);
    }
  }
  if (!positions) throw Error(ErrorCode::InvalidValue, "", "the calibration data holds no position that is not padding");
  auto mean = [&](const std::vector<double>& sum) {
    std::vector<float> v(sum.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(sum[i] / static_cast<double>(positions));
    return v;
  };
  std::vector<ImportanceTensor> out;
  for (size_t l = 0; l < acc.size(); ++l) {
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    const uint64_t d = static_cast<uint64_t>(D), q = static_cast<uint64_t>(Q), f = static_cast<uint64_t>(F);
    for (const char* n : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"})
      out.push_back({pre + n, {d}, mean(acc[l].attn)});
    out.push_back({pre + "self_attn.o_proj.weight", {q}, mean(acc[l].attn_out)});
    for (const char* n : {"mlp.gate_proj.weight", "mlp.up_proj.weight"})
      out.push_back({pre + n, {d}, mean(acc[l].mlp)});
    out.push_back({pre + "mlp.down_proj.weight", {f}, mean(acc[l].mlp_act)});
  }
  out.push_back(
      {c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", {static_cast<uint64_t>(D)}, mean(head)});
  return out;
}

void write_importance(const std::string& path, const std::vector<ImportanceTensor>& tensors,
                      const std::map<std::string, std::string>& metadata, bool overwrite) {
  check_output_file_path(path, {}, overwrite);
  std::vector<TensorSpec> specs;
  for (const auto& t : tensors) specs.push_back({t.name, DType::F32, t.shape});
  SafetensorsWriter w(path, specs, metadata);
  for (const auto& t : tensors) w.write(t.values.data(), t.values.size() * sizeof(float));
  w.commit();
}

}  // namespace deltakit
