// One-level BitDelta's side of a cherry's fused pass (src/codec/cherry_stream.h). Its statistics
// pass is plain BitDelta's block encoder, so the chain alone's scales — what the cherries are
// scored against — and the sign bits are those bitdelta stores. The refit is bitdelta_encode's
// with a skip mask: per unit, Σ|δ| over the entries no cherry took, in index order in one double,
// over their count; its error is the closed form Σδ² − 2sΣ|δ| + m·s² over those same entries.
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
        abs_(units_.size() - 1, 0.0),
        sq_(units_.size() - 1, 0.0),
        count_(units_.size() - 1, 0) {
    if (!chain_ || chain_->second_pass()) throw std::logic_error("bitdelta_cherry_coder: one level, one pass");
  }

  uint64_t block_end(uint64_t first) const override { return chain_->block_end(first); }
  void stats(uint64_t first, std::span<const float> block) override { chain_->stats(first, block); }

  void reconstruct(uint64_t first, std::span<const float> block, float* recon) override {
    if (!alone_done_) finish_alone();
    for_units(first, block.size(), [&](uint64_t u, uint64_t b, uint64_t e) {
      const float pos = scales_[u], neg = -scales_[u];
      for (uint64_t i = b; i < e; ++i) recon[i - first] = block[i - first] >= 0.0f ? pos : neg;
    });
  }

  void refit(uint64_t first, std::span<const float> block, std::span<const uint8_t> kept) override {
    for_units(first, block.size(), [&](uint64_t u, uint64_t b, uint64_t e) {
      double a = abs_[u], q = sq_[u];
      uint64_t c = count_[u];
      for (uint64_t i = b; i < e; ++i) {
        if (kept[i - first]) continue;
        const float v = block[i - first];
        a += std::fabs(v), q += static_cast<double>(v) * v, ++c;
      }
      abs_[u] = a, sq_[u] = q, count_[u] = c;
    });
  }

  void finish(Encoded& e) override {
    if (!alone_done_) finish_alone();
    const uint64_t U = units_.size() - 1;
    std::vector<float> scales(U);
    double err_sq = 0;
    for (uint64_t u = 0; u < U; ++u) {
      scales[u] = count_[u] ? static_cast<float>(abs_[u] / static_cast<double>(count_[u])) : 0.0f;
      const double s = scales[u];
      err_sq += std::max(0.0, sq_[u] - 2 * s * abs_[u] + static_cast<double>(count_[u]) * s * s);
    }
    e.attrs = alone_.attrs;  // bitdelta.scale, .group, .levels, .units: the same unit layout
    for (Part& p : alone_.parts) {
      if (p.name == "bitdelta.scales") std::memcpy(p.bytes.data(), scales.data(), U * sizeof(float));
      e.add(std::move(p));
    }
    e.error_measured = true, e.err_sq = err_sq, e.delta_sq = alone_.delta_sq;
  }

 private:
  // fn(u, b, e) over the pieces of [first, first + m) inside one unit each, in order
  template <class Fn>
  void for_units(uint64_t first, uint64_t m, Fn fn) {
    for (uint64_t i = first, end = first + m; i < end;) {
      const uint64_t u = static_cast<uint64_t>(std::upper_bound(units_.begin(), units_.end(), i) - units_.begin()) - 1;
      const uint64_t e = std::min(end, units_[u + 1]);
      fn(u, i, e);
      i = e;
    }
  }
  // the chain alone: its scales (to score against) and its parts (signs, kept; scales, refitted)
  void finish_alone() {
    chain_->finish(alone_);
    const Part& s = alone_.parts.at(1);
    if (s.name != "bitdelta.scales" || s.bytes.size() != (units_.size() - 1) * sizeof(float))
      throw std::logic_error("bitdelta_cherry_coder: unexpected parts");
    scales_.resize(units_.size() - 1);
    std::memcpy(scales_.data(), s.bytes.data(), s.bytes.size());
    alone_done_ = true;
  }

  std::unique_ptr<BlockEncoder> chain_;
  std::vector<uint64_t> units_;
  std::vector<double> abs_, sq_;  // over the entries no cherry took
  std::vector<uint64_t> count_;
  Encoded alone_;
  bool alone_done_ = false;
  std::vector<float> scales_;  // the chain alone's
};

}  // namespace

std::unique_ptr<CherryCoder> bitdelta_cherry_coder(const BitDeltaParams& prm, uint64_t rows, uint64_t cols) {
  if (prm.levels != 1 || rows * cols == 0) return nullptr;
  return std::make_unique<BitDeltaCherryCoder>(prm, rows, cols);
}

}  // namespace deltakit
