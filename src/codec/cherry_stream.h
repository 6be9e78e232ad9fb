// A cherry recipe's fused pass (algorithms.md §3, src/codec/codec.h): the same bytes the two-pass
// definition stores for `coder + cherry`, from δ a block at a time and no tensor-sized buffer:
//   1. the coder's statistics: what the chain alone reconstructs, δ̂_i, is known after it;
//   2. per block, the scores s_i = H_ii·(δ_i − δ̂_i)² and the selection — by the model-wide cut
//      in index order (scope=model) or the top k of each row once the row is whole (per=row) —
//      then the coder's refit, handed the cherries each block gave.
// With a scale per row and no importance file, a row is selected as soon as its own statistics
// are in, so the first pass is the only one.
// The error comes out of the same passes (the coder's closed form over the entries it keeps, and
// the cherries' own rounding), so nothing is decoded again. per=tensor (a cut over one tensor's
// scores needs two more passes) and chains without a cherry coder keep the whole-δ path.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "src/codec/cherry.h"
#include "src/codec/codec_types.h"
#include "src/codec/magnitude_kept.h"
#include "src/codec/score_cut.h"
#include "src/codec/stage.h"

namespace deltakit {

struct Recipe;  // src/codec/recipe.h

class CherryBlockEncoder final : public BlockEncoder {
 public:
  CherryBlockEncoder(const CherryParams& prm, DType dtype, uint64_t rows, uint64_t cols,
                     std::unique_ptr<CherryCoder> coder);
  // Before the second pass: the importance and, for scope=model, the cut (copied: it is spent).
  // Where the cut's search already holds what it keeps of this tensor (`selection`) and the
  // coder's refit needs only the cherries, they are taken as given and no second pass is run.
  void select_with(const Importance& imp, const ScoreCut* cut, const CutSelection* selection = nullptr);

  uint64_t block_end(uint64_t first) const override { return coder_->block_end(first); }
  void stats(uint64_t first, std::span<const float> block) override;
  bool second_pass() const override { return !one_pass_ && !given_; }
  void encode(uint64_t first, std::span<const float> block) override;
  void finish(Encoded& e) override;
  // The scores alone (for the model-wide cut), after the statistics pass: out holds block.size().
  void scores(uint64_t first, std::span<const float> block, const Importance& imp, float* out);
  // scope=model with no importance file and a coder whose scores are bounded by |δ|: the
  // statistics pass kept the entries of largest |δ| (about twice the cut's fraction), so after
  // it their scores are known without reading the pair again (src/codec/magnitude_kept.h).
  bool has_kept_scores() const { return magnitudes_.has_value(); }
  // fn(n, positions, scores, values, complete_from) over the kept entries a chunk at a time, in
  // index order: every entry not handed over scores a key (score_cut.h) below complete_from.
  // The kept entries are spent.
  using KeptScores = std::function<void(uint64_t n, std::span<const uint64_t> positions, std::span<const float> scores,
                                        std::span<const float> values, uint32_t complete_from)>;
  void kept_scores(const KeptScores& fn);

 private:
  // per=row: the rows of a block, each scored and selected once whole
  void select_rows(uint64_t first, std::span<const float> block);
  // a whole row (per=row): its top k, then the coder's refit over it
  void take_row(uint64_t first, std::span<const float> delta, std::span<const float> score);
  void keep_if(bool keep, uint64_t position, float value) {
    if (!keep) return;
    kept_.push_back(position);
    kept_values_.push_back(value);
  }
  // the coder's refit over a block, with the cherries taken since kept_[before]
  void refit_since(size_t before, uint64_t first, std::span<const float> block);

  CherryParams prm_;
  ValueType vt_;
  uint64_t cols_, n_;
  std::unique_ptr<CherryCoder> coder_;
  Importance imp_;
  ScoreCut cut_;
  std::vector<float> recon_, score_;
  bool one_pass_;
  bool given_ = false;  // the cherries came with select_with
  std::optional<MagnitudeKept> magnitudes_;
  std::vector<float> row_delta_;  // per=row: a row that runs across blocks
  uint64_t row_first_ = 0;
  std::vector<std::pair<float, uint32_t>> cand_;  // per=row: the row's entries that may be kept
  std::vector<uint32_t> chunk_max_;               // per=row: the keys that set its floor
  std::vector<uint64_t> kept_;                    // positions, ascending
  std::vector<float> kept_values_;
};

// The fused form of a cherry recipe over this dense rows × cols tensor; nullptr where it has none.
std::unique_ptr<CherryBlockEncoder> cherry_block_encoder(const Recipe& r, DType dtype, uint64_t rows, uint64_t cols);

}  // namespace deltakit
