#include "src/codec/cherry.h"

#include <algorithm>
#include <cmath>

namespace deltakit {

uint64_t cherry_count(double frac, uint64_t unit) {
  double k = std::ceil(frac * static_cast<double>(unit) - 1e-9);
  return std::min<uint64_t>(unit, k > 0 ? static_cast<uint64_t>(k) : 0);
}

std::vector<float> cherry_scores(std::span<const float> delta, std::span<const float> recon, uint64_t cols,
                                 const Importance& imp) {
  std::vector<float> score(delta.size());
  cherry_scores_into(delta, recon, 0, cols, imp, score.data());
  return score;
}

void cherry_scores_into(std::span<const float> delta, std::span<const float> recon, uint64_t first, uint64_t cols,
                        const Importance& imp, float* score) {
  const uint64_t n = delta.size();
  // one loop per kind of importance, so the common ones vectorize
  switch (imp.kind) {
    case Importance::Kind::PerElement: {
      const float* h = imp.h.data() + first;
      for (uint64_t i = 0; i < n; ++i) score[i] = h[i] * (delta[i] - recon[i]) * (delta[i] - recon[i]);
      break;
    }
    case Importance::Kind::PerColumn:
      for (uint64_t i = 0, c = first % cols; i < n; ++i, c = c + 1 == cols ? 0 : c + 1)
        score[i] = imp.h[c] * (delta[i] - recon[i]) * (delta[i] - recon[i]);
      break;
    case Importance::Kind::None:
      for (uint64_t i = 0; i < n; ++i) score[i] = 1.0f * (delta[i] - recon[i]) * (delta[i] - recon[i]);
  }
}

std::vector<uint64_t> cherry_select(const CherryParams& prm, std::span<const float> delta, std::span<const float> recon,
                                    uint64_t rows, uint64_t cols, const Importance& imp) {
  const uint64_t n = delta.size();
  std::vector<float> score = cherry_scores(delta, recon, cols, imp);
  auto higher = [&](uint64_t a, uint64_t b) { return score[a] != score[b] ? score[a] > score[b] : a < b; };
  std::vector<uint64_t> kept;
  auto pick = [&](uint64_t begin, uint64_t end) {
    const uint64_t k = cherry_count(prm.frac, end - begin);
    std::vector<uint64_t> idx(end - begin);
    for (uint64_t i = begin; i < end; ++i) idx[i - begin] = i;
    if (k < idx.size()) std::nth_element(idx.begin(), idx.begin() + k, idx.end(), higher);
    idx.resize(k);
    kept.insert(kept.end(), idx.begin(), idx.end());
  };
  if (prm.per_row && rows > 1) {
    for (uint64_t r = 0; r < rows; ++r) pick(r * cols, (r + 1) * cols);
  } else {
    pick(0, n);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

}  // namespace deltakit
