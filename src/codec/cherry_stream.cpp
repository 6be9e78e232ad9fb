#include "src/codec/cherry_stream.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <stdexcept>

#include "src/codec/recipe.h"
#include "src/codec/tensor_codec.h"

namespace deltakit {

CherryBlockEncoder::CherryBlockEncoder(const CherryParams& prm, DType dtype, uint64_t rows, uint64_t cols,
                                       std::unique_ptr<CherryCoder> coder)
    : prm_(prm),
      vt_(value_type_for(dtype)),
      cols_(cols),
      n_(rows * cols),
      coder_(std::move(coder)),
      // per=row with a scale per row and no importance file: a row is scored, selected and
      // refitted as soon as its statistics are in, so the statistics pass is the only one
      one_pass_(!prm.scope_model && prm.per_row && prm.importance == "magnitude" && coder_->rows_are_units()) {
  if (prm.scope_model && prm.importance == "magnitude" && coder_->scores_bounded_by_magnitude() &&
      n_ < (uint64_t{1} << 32))
    magnitudes_.emplace(n_, 2 * prm.frac);  // 2x the cut's share: a tensor may take more than its share
}

void CherryBlockEncoder::kept_scores(const KeptScores& fn) {
  if (!magnitudes_) throw std::logic_error("cherry: no kept scores");
  uint32_t complete_from = 0;  // nothing dropped: every entry is here
  if (const uint32_t bits = magnitudes_->floor(); bits != 0) {
    float floor;
    std::memcpy(&floor, &bits, 4);
    const float bound = coder_->score_bound_below(floor);
    complete_from = std::isnan(bound) ? UINT32_MAX : score_key(bound) + 1;
  }
  // a chunk at a time, so the scores never take more than the kept entries do
  const std::span<const uint32_t> at = magnitudes_->positions();
  const std::span<const float> delta = magnitudes_->values();
  constexpr size_t kChunk = 8192;  // small: the scratch comes from the heap's reused memory
  std::vector<uint64_t> positions;
  for (size_t c = 0; c < at.size(); c += kChunk) {
    const size_t m = std::min(kChunk, at.size() - c);
    recon_.resize(m), score_.resize(m);
    coder_->reconstruct_at(at.subspan(c, m), delta.subspan(c, m), recon_.data());
    cherry_scores_into(delta.subspan(c, m), recon_, 0, cols_, {}, score_.data());
    positions.assign(at.begin() + c, at.begin() + c + m);
    fn(n_, positions, score_, delta.subspan(c, m), complete_from);
  }
  magnitudes_.reset();
}

void CherryBlockEncoder::select_with(const Importance& imp, const ScoreCut* cut, const CutSelection* selection) {
  if (prm_.scope_model && !cut) throw std::logic_error("cherry scope=model needs the pipeline's model-wide cut");
  if (one_pass_ && imp.kind != Importance::Kind::None)
    throw std::logic_error("cherry: an importance handed to a recipe that names none");
  imp_ = imp;
  if (cut) cut_ = *cut;
  magnitudes_.reset();  // the cut is found: what the statistics pass kept for it is spent
  if (given_) throw std::logic_error("cherry: select_with twice after a selection");
  if (prm_.scope_model && selection && !coder_->refit_reads_block()) {
    if (selection->values.size() != selection->positions.size() ||
        !std::is_sorted(selection->positions.begin(), selection->positions.end()) ||
        (!selection->positions.empty() && selection->positions.back() >= n_))
      throw std::logic_error("cherry: a selection out of order or past the tensor");
    kept_ = selection->positions;
    kept_values_ = selection->values;
    coder_->refit(0, {}, kept_, kept_values_);  // the coder's refit visits the cherries alone
    given_ = true;
  }
}

void CherryBlockEncoder::scores(uint64_t first, std::span<const float> block, const Importance& imp, float* out) {
  recon_.resize(block.size());
  coder_->reconstruct(first, block, recon_.data());
  cherry_scores_into(block, recon_, first, cols_, imp, out);
}

void CherryBlockEncoder::stats(uint64_t first, std::span<const float> block) {
  coder_->stats(first, block);
  if (magnitudes_) magnitudes_->add(first, block);
  if (one_pass_) select_rows(first, block);  // each whole row's α is known once its stats are in
}

void CherryBlockEncoder::encode(uint64_t first, std::span<const float> block) {
  if (!prm_.scope_model) return select_rows(first, block);
  const uint64_t m = block.size();
  score_.resize(m);
  scores(first, block, imp_, score_.data());
  const size_t before = kept_.size();  // the cut spends its ties in index order, across blocks
  for_each_kept(std::span<const float>(score_), cut_, [&](uint64_t k) { keep_if(true, first + k, block[k]); });
  refit_since(before, first, block);
}

void CherryBlockEncoder::select_rows(uint64_t first, std::span<const float> block) {
  // whole rows inside the block are scored and selected where they lie; a row across blocks is
  // gathered first (rows come in order)
  const auto row = [&](uint64_t row_first, std::span<const float> delta) {
    score_.resize(delta.size());
    scores(row_first, delta, imp_, score_.data());
    take_row(row_first, delta, score_);
  };
  const uint64_t m = block.size();
  for (uint64_t k = 0; k < m;) {
    if (row_delta_.empty() && m - k >= cols_) {
      row(first + k, block.subspan(k, cols_));
      k += cols_;
      continue;
    }
    const uint64_t take = std::min(m - k, cols_ - row_delta_.size());
    if (row_delta_.empty()) row_first_ = first + k;
    row_delta_.insert(row_delta_.end(), block.begin() + k, block.begin() + k + take);
    k += take;
    if (row_delta_.size() == cols_) {
      row(row_first_, row_delta_);
      row_delta_.clear();
    }
  }
}

namespace {
// A row's scores are finite and ≥ 0 (squares times a non-negative importance), so their bits
// order as they do: score_key's clamp of negatives and NaN is not needed in the per-row loops.
inline uint32_t bits_of(float s) { return std::bit_cast<uint32_t>(s); }
}  // namespace

void CherryBlockEncoder::take_row(uint64_t first, std::span<const float> delta, std::span<const float> score) {
  // The row's top k by score, ties toward the lower index (cherry_select's order). Of the maxima
  // of m ≥ k disjoint sets of entries, the k-th largest is a floor: those maxima are m distinct
  // entries, so at least k entries reach it, and the k-th largest score does too. The sets are
  // the 16 lanes of each of S runs of vectors (lane-wise maxima: no horizontal reductions) and
  // each tail entry alone; with 16·S ≈ 4k the floor sits near the row's k-th score, and only the
  // entries at or above it (a few times k) are ranked.
  const uint64_t L = delta.size(), k = cherry_count(prm_.frac, L);
  const size_t before = kept_.size();
  if (k > 0) {
    const uint64_t vecs = L / 16, S = std::min(vecs, (4 * k + 15) / 16);
    chunk_max_.clear();
    for (uint64_t r = 0; r < S; ++r) {
      uint32_t lane[16] = {};
      for (uint64_t v = r * vecs / S, ve = (r + 1) * vecs / S; v < ve; ++v)
        for (uint64_t l = 0; l < 16; ++l) lane[l] = std::max(lane[l], bits_of(score[16 * v + l]));
      chunk_max_.insert(chunk_max_.end(), lane, lane + 16);
    }
    for (uint64_t i = 16 * vecs; i < L; ++i) chunk_max_.push_back(bits_of(score[i]));
    std::nth_element(chunk_max_.begin(), chunk_max_.begin() + static_cast<std::ptrdiff_t>(k - 1), chunk_max_.end(),
                     std::greater<uint32_t>());
    const uint32_t floor = chunk_max_[k - 1];
    cand_.clear();
    uint64_t i = 0;
    for (; i + 16 <= L; i += 16) {
      uint32_t any = 0;
      for (uint64_t l = 0; l < 16; ++l) any |= bits_of(score[i + l]) >= floor;
      if (any)
        for (uint64_t l = 0; l < 16; ++l)
          if (bits_of(score[i + l]) >= floor) cand_.push_back({score[i + l], static_cast<uint32_t>(i + l)});
    }
    for (; i < L; ++i)
      if (bits_of(score[i]) >= floor) cand_.push_back({score[i], static_cast<uint32_t>(i)});
    if (cand_.size() > k) {
      const auto better = [](const std::pair<float, uint32_t>& a, const std::pair<float, uint32_t>& b) {
        return a.first != b.first ? a.first > b.first : a.second < b.second;
      };
      std::nth_element(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(), better);
      cand_.resize(k);
    }
    std::sort(cand_.begin(), cand_.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    for (const auto& [s, j] : cand_) keep_if(true, first + j, delta[j]);
  }
  refit_since(before, first, delta);
}

void CherryBlockEncoder::refit_since(size_t before, uint64_t first, std::span<const float> block) {
  coder_->refit(first, block, std::span<const uint64_t>(kept_).subspan(before),
                std::span<const float>(kept_values_).subspan(before));
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
  if (rows == 0 || cols == 0 || cols > UINT32_MAX) return nullptr;
  std::unique_ptr<CherryCoder> coder = r.chain[0]->cherry_coder(rows, cols);
  if (!coder) return nullptr;
  return std::make_unique<CherryBlockEncoder>(*r.cherry, dtype, rows, cols, std::move(coder));
}

}  // namespace deltakit
