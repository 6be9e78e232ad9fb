#include <algorithm>

#include "src/codec/sparse.h"
#include "src/codec/stage.h"
#include "src/core/parallel.h"
#include "src/core/philox.h"

namespace deltakit {

double DareParams::effective_rescale() const {
  if (!rescale_auto) return rescale;
  return p >= 1.0 ? 1.0 : 1.0 / (1.0 - p);
}

SparseSelection dare_select(const DareParams& prm, std::string_view tensor_name, std::span<const float> delta,
                            std::span<const uint8_t> skip, unsigned threads, uint64_t block) {
  const uint64_t n = delta.size();
  const TensorRng rng(prm.seed, tensor_name);
  const uint64_t threshold = TensorRng::drop_threshold(prm.p);
  const float scale = static_cast<float>(prm.effective_rescale());
  block = std::max<uint64_t>(block, 4);
  const uint64_t blocks = (n + block - 1) / block;
  std::vector<SparseSelection> parts(blocks);
  parallel_blocks(n, block, threads, [&](uint64_t b, uint64_t begin, uint64_t end) {
    SparseSelection& s = parts[b];
    const uint64_t m = end - begin;
    std::vector<uint32_t> words(m);
    rng.words(begin, m, words.data());
    s.positions.resize(m);
    s.values.resize(m);
    uint64_t k = 0;
    for (uint64_t j = 0; j < m; ++j) {  // branchless compaction: the mask is random
      const uint64_t i = begin + j;
      const bool keep = words[j] >= threshold && (skip.empty() || !skip[i]);
      s.positions[k] = i;
      s.values[k] = delta[i] * scale;
      k += keep;
    }
    s.positions.resize(k);
    s.values.resize(k);
  });
  SparseSelection out;
  uint64_t total = 0;
  for (const auto& s : parts) total += s.positions.size();
  out.positions.reserve(total);
  out.values.reserve(total);
  for (const auto& s : parts) {
    out.positions.insert(out.positions.end(), s.positions.begin(), s.positions.end());
    out.values.insert(out.values.end(), s.values.begin(), s.values.end());
  }
  return out;
}

std::vector<uint64_t> sparse_row_offsets(std::span<const uint64_t> positions, uint64_t rows, uint64_t cols) {
  std::vector<uint64_t> off(rows + 1, 0);
  uint64_t j = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    off[r] = j;
    const uint64_t row_end = (r + 1) * cols;
    while (j < positions.size() && positions[j] < row_end) ++j;
  }
  off[rows] = j;
  return off;
}

}  // namespace deltakit

// --- the stage ------------------------------------------------------------------------------
namespace deltakit {
namespace {

class DareStage final : public Stage {
 public:
  explicit DareStage(const DareParams& p) : p_(p) {}
  const char* name() const override { return "dare"; }
  StageRole role() const override { return StageRole::Sparsifier; }
  std::string params() const override {
    return ":p=" + recipe_number(p_.p) +
           ",rescale=" + (p_.rescale_auto ? std::string("auto") : recipe_number(p_.rescale)) +
           ",seed=" + std::to_string(p_.seed);
  }
  SparseSelection select(const TensorDelta& t, std::span<const float> delta,
                         std::span<const uint8_t> skip) const override {
    return dare_select(p_, t.name, delta, skip, t.threads);
  }
  void add_attrs(Encoded& e) const override { e.attrs["dare.rescale"] = p_.effective_rescale(); }

 private:
  DareParams p_;
};

}  // namespace

std::unique_ptr<Stage> make_dare_stage(StageArgs& a, uint64_t seed) {
  DareParams p;
  p.p = a.real("p", 0.9, 0.0, 1.0);
  std::string r = a.take("rescale", "auto");
  if (r == "auto") {
    p.rescale_auto = true;
  } else if (r == "none") {
    p.rescale_auto = false, p.rescale = 1.0;
  } else {
    p.rescale_auto = false;
    p.rescale = a.parse_real("rescale", r, 0.0, 1e6, true);
  }
  p.seed = a.integer("seed", seed, 0, UINT64_MAX);
  return std::make_unique<DareStage>(p);
}

}  // namespace deltakit
