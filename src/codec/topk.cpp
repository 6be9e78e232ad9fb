#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "src/codec/score_cut.h"
#include "src/codec/sparse.h"
#include "src/codec/stage.h"

namespace deltakit {

uint64_t topk_count(double density, uint64_t n) {
  return std::min<uint64_t>(n, static_cast<uint64_t>(std::floor(density * static_cast<double>(n))));
}

SparseSelection topk_select(const TopkParams& prm, std::span<const float> delta, std::span<const uint8_t> skip) {
  const uint64_t n = delta.size();
  ScoreCut cut = magnitude_cut(delta, topk_count(prm.density, n), skip);
  SparseSelection s;
  for (uint64_t i = 0; i < n; ++i) {
    if ((!skip.empty() && skip[i]) || !cut.keep(magnitude_key(delta[i]))) continue;
    s.positions.push_back(i);
    s.values.push_back(delta[i]);
  }
  return s;
}

}  // namespace deltakit

// --- the stage ------------------------------------------------------------------------------
namespace deltakit {
namespace {

class TopkStage final : public Stage {
 public:
  explicit TopkStage(const TopkParams& p) : p_(p) {}
  const char* name() const override { return "topk"; }
  StageRole role() const override { return StageRole::Sparsifier; }
  std::string params() const override {
    return ":density=" + recipe_number(p_.density) + (p_.scope_model ? ",scope=model" : "");
  }
  bool model_scope() const override { return p_.scope_model; }
  uint64_t model_budget(uint64_t elements) const override { return topk_count(p_.density, elements); }
  SparseSelection select(const TensorDelta& t, std::span<const float> delta,
                         std::span<const uint8_t> skip) const override {
    if (!p_.scope_model) return topk_select(p_, delta, skip);
    if (!t.cut) throw std::logic_error("topk scope=model needs the pipeline's model-wide cut");
    std::vector<float> mag(delta.size());
    for (uint64_t i = 0; i < delta.size(); ++i) mag[i] = std::fabs(delta[i]);
    SparseSelection sel;
    sel.positions = select_by_cut(mag, *t.cut);
    for (uint64_t p : sel.positions) sel.values.push_back(delta[p]);
    return sel;
  }

 private:
  TopkParams p_;
};

}  // namespace

std::unique_ptr<Stage> make_topk_stage(StageArgs& a, uint64_t) {
  TopkParams p;
  p.density = a.real("density", 0.1, 0.0, 1.0);
  p.scope_model = a.scope();
  return std::make_unique<TopkStage>(p);
}

}  // namespace deltakit
