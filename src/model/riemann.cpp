#include "src/model/riemann.h"

#include <map>
#include <numeric>
#include <stdexcept>

#include "src/model/llama_model.h"

namespace deltakit {

double loss_on_batches(const LlamaParams& w, const std::vector<Batch>& data, std::vector<float>* grad) {
  LlamaModel m(w.config());
  int64_t total = 0;
  double sum = 0;
  // the token-weighted mean over batches: each batch's gradient scaled by its share of positions
  std::vector<int64_t> counted;
  for (const Batch& b : data) {
    const double mean = m.forward(w.view(), b.tokens.data(), b.targets.data(), b.B, b.T);
    counted.push_back(m.counted());
    total += m.counted(), sum += mean * static_cast<double>(m.counted());
  }
  if (!total) throw std::invalid_argument("the batches hold no position with a target");
  if (grad) {
    grad->assign(w.data().size(), 0.0f);
    const ModelWeights g = w.bind(grad->data());
    for (size_t i = 0; i < data.size(); ++i) {
      if (!counted[i]) continue;
      const Batch& b = data[i];
      m.forward(w.view(), b.tokens.data(), b.targets.data(), b.B, b.T);
      m.backward(w.view(), g, static_cast<float>(static_cast<double>(counted[i]) / static_cast<double>(total)));
    }
  }
  return sum / static_cast<double>(total);
}

RiemannReport riemann_loss_change(const LlamaParams& post, const std::vector<float>& d, const std::vector<Batch>& data,
                                  const std::vector<int64_t>& C) {
  if (d.size() != post.data().size()) throw std::invalid_argument("the edit's size differs from the model's");
  RiemannReport r;
  r.C = C;
  LlamaParams at = post;
  auto move_to = [&](double t) {
    for (size_t i = 0; i < d.size(); ++i) at.data()[i] = post.data()[i] + static_cast<float>(t) * d[i];
  };
  r.loss_post = loss_on_batches(post, data);
  move_to(1.0);
  r.loss_edit = loss_on_batches(at, data);
  r.delta = r.loss_edit - r.loss_post;
  std::map<std::pair<int64_t, int64_t>, double> inner;  // ⟨∇L(W_post + (c/C)·D), D⟩ by reduced c/C
  std::vector<float> grad;
  for (int64_t c_total : C) {
    if (c_total < 1) throw std::invalid_argument("C must be >= 1");
    double s = 0;
    for (int64_t c = 0; c < c_total; ++c) {
      const int64_t g = std::gcd(c, c_total);
      const auto key = std::make_pair(c / g, c_total / g);
      auto it = inner.find(key);
      if (it == inner.end()) {
        move_to(static_cast<double>(c) / static_cast<double>(c_total));
        loss_on_batches(at, data, &grad);
        double dot = 0;
        for (size_t i = 0; i < d.size(); ++i) dot += static_cast<double>(grad[i]) * d[i];
        it = inner.emplace(key, dot).first;
      }
      s += it->second;
    }
    r.estimate.push_back(s / static_cast<double>(c_total));
  }
  return r;
}

}  // namespace deltakit
