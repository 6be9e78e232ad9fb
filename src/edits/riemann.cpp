#include "src/edits/riemann.h"

#include <algorithm>
#include <map>
#include <numeric>

#include "src/model/llama_model.h"
#include "src/core/error.h"

namespace deltakit {

double loss_on_batches(const LlamaParams& w, const std::vector<Batch>& data, std::vector<float>* grad) {
  // the token-weighted mean over batches: each batch's gradient scaled by its share of the
  // positions with a target, counted up front so that each batch takes one forward
  std::vector<int64_t> counted;
  int64_t total = 0;
  for (const Batch& b : data) {
    counted.push_back(std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) { return t >= 0; }));
    total += counted.back();
  }
  if (!total) throw Error(ErrorCode::InvalidValue, "", "the batches hold no position with a target");
  LlamaModel m(w.config());
  double sum = 0;
  if (grad) grad->assign(w.data().size(), 0.0f);
  const ModelWeights g = grad ? w.bind(grad->data()) : ModelWeights{};
  for (size_t i = 0; i < data.size(); ++i) {
    if (!counted[i]) continue;
    const Batch& b = data[i];
    const double share = static_cast<double>(counted[i]) / static_cast<double>(total);
    sum += share * m.forward(w.view(), b.tokens.data(), b.targets.data(), b.B, b.T);
    if (grad) m.backward(w.view(), g, static_cast<float>(share));
  }
  return sum;
}

RiemannReport riemann_loss_change(const LlamaParams& post, const std::vector<float>& d, const std::vector<Batch>& data,
                                  const std::vector<int64_t>& C) {
  std::vector<float> grad_post;
  const double loss_post = loss_on_batches(post, data, &grad_post);
  return riemann_loss_change(post, loss_post, grad_post, d, data, C);
}

RiemannReport riemann_loss_change(const LlamaParams& post, double loss_post, const std::vector<float>& grad_post,
                                  const std::vector<float>& d, const std::vector<Batch>& data,
                                  const std::vector<int64_t>& C) {
  if (d.size() != post.data().size() || grad_post.size() != post.data().size())
    throw Error(ErrorCode::InvalidValue, "", "the edit's or the gradient's size differs from the model's");
  RiemannReport r;
  r.C = C;
  LlamaParams at = post;
  auto move_to = [&](double t) {
    for (size_t i = 0; i < d.size(); ++i) at.data()[i] = post.data()[i] + static_cast<float>(t) * d[i];
  };
  auto dot = [&](const std::vector<float>& grad) {
    double s = 0;
    for (size_t i = 0; i < d.size(); ++i) s += static_cast<double>(grad[i]) * d[i];
    return s;
  };
  r.loss_post = loss_post;
  move_to(1.0);
  r.loss_edit = loss_on_batches(at, data);
  r.delta = r.loss_edit - r.loss_post;
  // ⟨∇L(W_post + (c/C)·D), D⟩ by reduced c/C; the point 0/1 from the caller's gradient
  std::map<std::pair<int64_t, int64_t>, double> inner = {{{0, 1}, dot(grad_post)}};
  std::vector<float> grad;
  for (int64_t c_total : C) {
    if (c_total < 1) throw Error(ErrorCode::InvalidValue, "", "C must be >= 1");
    double s = 0;
    for (int64_t c = 0; c < c_total; ++c) {
      const int64_t g = std::gcd(c, c_total);
      const auto key = std::make_pair(c / g, c_total / g);
      auto it = inner.find(key);
      if (it == inner.end()) {
        move_to(static_cast<double>(c) / static_cast<double>(c_total));
        loss_on_batches(at, data, &grad);
        it = inner.emplace(key, dot(grad)).first;
      }
      s += it->second;
    }
    r.estimate.push_back(s / static_cast<double>(c_total));
  }
  return r;
}

}  // namespace deltakit
