// One-level BitDelta's side of a cherry's fused pass (src/codec/cherry_stream.h). Its statistics
// pass is plain BitDelta's block encoder, so the chain alone's scales — what the cherries are
// scored against — and the sign bits are those bitdelta stores. The refit is bitdelta_encode's
// with a skip mask (refit_scale): per unit, its Σ|δ| less the cherries', over the count left, so
// only the cherries are visited; the error is the closed form Σδ² − 2sΣ|δ| + m·s² over the
// entries no cherry took, from the unit's sums less the cherries'.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "src/codec/bitdelta.h"
#include "src/codec/cherry_stream.h"
#include "src/codec/value_stream.h"

namespace deltakit {

namespace {

class BitDeltaCherryCoder final : public CherryCoder {
 public:
  BitDeltaCherryCoder(const BitDeltaParams& prm, uint64_t rows, uint64_t cols)
      : chain_(bitdelta_block_encoder(prm, rows, cols)),
        units_(unit_offsets(prm.scale, prm.group, rows * cols, dense_row_offsets(rows, cols))),
        kept_abs_(units_.size() - 1, 0.0),
        kept_sq_(units_.size() - 1, 0.0),
        kept_count_(units_.size() - 1, 0),
        row_units_(prm.scale == ScaleUnit::Row) {
    if (!chain_ || chain_->second_pass()) throw std::logic_error("bitdelta_cherry_coder: one level, one pass");
  }

  uint64_t block_end(uint64_t first) const override { return chain_->block_end(first); }
  void stats(uint64_t first, std::span<const float> block) override { chain_->stats(first, block); }

  bool rows_are_units() const override { return row_units_; }

  void reconstruct(uint64_t first, std::span<const float> block, float* recon) override {
    // α of each unit from its sums so far: complete once the unit's stats are in (finish()
    // computes the stored scales the same way)
    const BitDeltaUnitSums sums = bitdelta_unit_sums(*chain_);
    for_units(first, block.size(), [&](uint64_t u, uint64_t b, uint64_t e) {
      const float pos = scale_of(sums, u), neg = -pos;
      for (uint64_t i = b; i < e; ++i) recon[i - first] = block[i - first] >= 0.0f ? pos : neg;
    });
  }

  bool scores_bounded_by_magnitude() const override { return true; }

  void reconstruct_at(std::span<const uint32_t> positions, std::span<const float> delta, float* recon) override {
    const BitDeltaUnitSums sums = bitdelta_unit_sums(*chain_);
    uint64_t u = 0;
    for (size_t j = 0; j < positions.size(); ++j) {  // ascending: the unit only moves forward
      while (positions[j] >= units_[u + 1]) ++u;
      const float a = scale_of(sums, u);
      recon[j] = delta[j] >= 0.0f ? a : -a;
    }
  }

  // Over each unit: (0 − α)² at δ = 0, and (m − α)² where m passes α; scores fall from δ = 0 to
  // |δ| = α and rise after it, and float rounding keeps that order, so no |δ| < m scores more.
  float score_bound_below(float m) const override {
    const BitDeltaUnitSums sums = bitdelta_unit_sums(*chain_);
    float bound = 0.0f;
    for (uint64_t u = 0; u + 1 < units_.size(); ++u) {
      const float a = scale_of(sums, u);
      bound = std::max(bound, 1.0f * (0.0f - a) * (0.0f - a));  // cherry_scores_into's arithmetic
      if (m > a) bound = std::max(bound, 1.0f * (m - a) * (m - a));
    }
    return bound;
  }

  bool refit_reads_block() const override { return false; }  // a unit's sums less the cherries'

  void refit(uint64_t /*first*/, std::span<const float> /*block*/, std::span<const uint64_t> kept,
             std::span<const float> kept_values) override {
    for (size_t j = 0; j < kept.size(); ++j) {  // index order: the sums bitdelta_encode makes
      const uint64_t u = unit_of(kept[j]);
      const float v = kept_values[j];
      kept_abs_[u] += std::fabs(v), kept_sq_[u] += static_cast<double>(v) * v, ++kept_count_[u];
    }
  }

  void finish(Encoded& e) override {
    finish_alone();
    const BitDeltaUnitSums sums = bitdelta_unit_sums(*chain_);
    const uint64_t U = units_.size() - 1;
    std::vector<float> scales(U);
    double err_sq = 0;
    for (uint64_t u = 0; u < U; ++u) {
      const uint64_t m = units_[u + 1] - units_[u] - kept_count_[u];
      scales[u] = refit_scale(sums.abs[u], kept_abs_[u], m);
      const double s = scales[u], a = std::max(0.0, sums.abs[u] - kept_abs_[u]);
      const double q = std::max(0.0, sums.sq[u] - kept_sq_[u]);
      err_sq += std::max(0.0, q - 2 * s * a + static_cast<double>(m) * s * s);
    }
    e.attrs = alone_.attrs;  // bitdelta.scale, .group, .levels, .units: the same unit layout
    for (Part& p : alone_.parts) {
      if (p.name == "bitdelta.scales") std::memcpy(p.bytes.data(), scales.data(), U * sizeof(float));
      e.add(std::move(p));
    }
    e.error_measured = true, e.err_sq = err_sq, e.delta_sq = alone_.delta_sq;
  }

 private:
  // α of unit u from its sums (complete once the unit's stats are in)
  float scale_of(const BitDeltaUnitSums& sums, uint64_t u) const {
    const uint64_t len = units_[u + 1] - units_[u];
    return len ? static_cast<float>(sums.abs[u] / static_cast<double>(len)) : 0.0f;
  }
  uint64_t unit_of(uint64_t i) const {
    return static_cast<uint64_t>(std::upper_bound(units_.begin(), units_.end(), i) - units_.begin()) - 1;
  }
  // fn(u, b, e) over the pieces of [first, first + m) inside one unit each, in order
  template <class Fn>
  void for_units(uint64_t first, uint64_t m, Fn fn) {
    for (uint64_t i = first, end = first + m; i < end;) {
      const uint64_t u = unit_of(i), e = std::min(end, units_[u + 1]);
      fn(u, i, e);
      i = e;
    }
  }
  // the chain alone's parts: its sign bits kept, its scales overwritten by the refit
  void finish_alone() {
    chain_->finish(alone_);
    const Part& s = alone_.parts.at(1);
    if (s.name != "bitdelta.scales" || s.bytes.size() != (units_.size() - 1) * sizeof(float))
      throw std::logic_error("bitdelta_cherry_coder: unexpected parts");
  }

  std::unique_ptr<BlockEncoder> chain_;
  std::vector<uint64_t> units_;
  std::vector<double> kept_abs_, kept_sq_;  // per unit, over the cherries
  std::vector<uint64_t> kept_count_;
  Encoded alone_;
  bool row_units_;
};

}  // namespace

std::unique_ptr<CherryCoder> bitdelta_cherry_coder(const BitDeltaParams& prm, uint64_t rows, uint64_t cols) {
  if (prm.levels != 1 || rows * cols == 0) return nullptr;
  return std::make_unique<BitDeltaCherryCoder>(prm, rows, cols);
}

}  // namespace deltakit
