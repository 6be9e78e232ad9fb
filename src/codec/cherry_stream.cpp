#include "src/codec/cherry_stream.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

#include "src/codec/recipe.h"
#include "src/codec/tensor_codec.h"

namespace deltakit {

CherryBlockEncoder::CherryBlockEncoder(const CherryParams& prm, DType dtype, uint64_t rows, uint64_t cols,
                                       std::unique_ptr<CherryCoder> coder)
    : prm_(prm), vt_(value_type_for(dtype)), rows_(rows), cols_(cols), n_(rows * cols), coder_(std::move(coder)) {}

void CherryBlockEncoder::select_with(const Importance& imp, const ScoreCut* cut) {
  if (prm_.scope_model && !cut) throw std::logic_error("cherry scope=model needs the pipeline's model-wide cut");
  imp_ = imp;
  if (cut) cut_ = *cut;
}

void CherryBlockEncoder::scores(uint64_t first, std::span<const float> block, const Importance& imp, float* out) {
  recon_.resize(block.size());
  coder_->reconstruct(first, block, recon_.data());
  cherry_scores_into(block, recon_, first, cols_, imp, out);
}

void CherryBlockEncoder::encode(uint64_t first, std::span<const float> block) {
  const uint64_t m = block.size();
  score_.resize(m);
  scores(first, block, imp_, score_.data());
  if (prm_.scope_model) {  // every key asked once, in index order, as select_by_cut asks them
    kept_flags_.assign(m, 0);
    for (uint64_t k = 0; k < m; ++k)
      if (cut_.keep(score_key(score_[k]))) {
        kept_flags_[k] = 1;
        kept_.push_back(first + k);
        kept_values_.push_back(block[k]);
      }
    coder_->refit(first, block, kept_flags_);
    return;
  }
  // per=row: fill the row; a whole row is selected, then refitted (rows come in order)
  for (uint64_t k = 0; k < m;) {
    const uint64_t take = std::min(m - k, cols_ - row_delta_.size());
    row_delta_.insert(row_delta_.end(), block.begin() + k, block.begin() + k + take);
    row_score_.insert(row_score_.end(), score_.begin() + k, score_.begin() + k + take);
    k += take;
    if (row_delta_.size() == cols_) take_row();
  }
}

void CherryBlockEncoder::take_row() {
  // the row's top k by score, ties toward the lower index (cherry_select's order)
  const uint64_t L = row_delta_.size(), k = cherry_count(prm_.frac, L);
  std::vector<uint64_t> idx(L);
  std::iota(idx.begin(), idx.end(), uint64_t{0});
  const auto higher = [&](uint64_t a, uint64_t b) {
    return row_score_[a] != row_score_[b] ? row_score_[a] > row_score_[b] : a < b;
  };
  if (k < L) std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(), higher);
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  kept_flags_.assign(L, 0);
  for (uint64_t i : idx) {
    kept_flags_[i] = 1;
    kept_.push_back(row_first_ + i);
    kept_values_.push_back(row_delta_[i]);
  }
  coder_->refit(row_first_, row_delta_, kept_flags_);
  row_first_ += L;
  row_delta_.clear();
  row_score_.clear();
}

void CherryBlockEncoder::finish(Encoded& e) {
  if (!row_delta_.empty()) throw std::logic_error("CherryBlockEncoder: a row was left unfinished");
  coder_->finish(e);
  add_cherry_parts(e, kept_, kept_values_, n_, vt_);
  // the cherries' own error: each stored in the value dtype, so its rounding
  const std::vector<float> stored = load_values(vt_, e.parts.back().bytes);
  double kept_err = 0;
  for (size_t j = 0; j < stored.size(); ++j) {
    const double d = static_cast<double>(kept_values_[j]) - stored[j];
    kept_err += d * d;
  }
  e.err_sq += kept_err;
  e.error_measured = true;
}

std::unique_ptr<CherryBlockEncoder> cherry_block_encoder(const Recipe& r, DType dtype, uint64_t rows, uint64_t cols) {
  if (!r.cherry || r.chain.size() != 1 || r.chain[0]->role() != StageRole::ValueCoder) return nullptr;
  if (!r.cherry->scope_model && !r.cherry->per_row) return nullptr;  // per=tensor: the whole-δ path
  if (rows == 0 || cols == 0) return nullptr;
  std::unique_ptr<CherryCoder> coder = r.chain[0]->cherry_coder(rows, cols);
  if (!coder) return nullptr;
  return std::make_unique<CherryBlockEncoder>(*r.cherry, dtype, rows, cols, std::move(coder));
}

}  // namespace deltakit
