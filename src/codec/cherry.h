// Hessian-aware "cherry" retention (CherryQ, Cui & Wang 2024; algorithms.md §3), a modifier on a lossy
// recipe: with δ̂ what the recipe alone reconstructs, each entry scores
//     s_i = H_ii · (δ_i − δ̂_i)²
// and the top k entries by score are kept in the tensor's value dtype (ties toward the lower
// index): k = ceil(frac · cols) in every row (per=row, CherryQ's default) or ceil(frac · n) over
// the tensor (per=tensor); or, with scope=model, the top ceil(frac · N) over every tensor of the
// model that has the modifier (a cut found by the pipeline, src/pipeline/global_cut.h). The recipe is then refitted
// with the cherries left out of its statistics, and decoding overwrites the cherry positions with the kept values.
// H_ii: 1 ("magnitude"), a per-element diagonal Fisher ("fisher"), or the per-column mean
// squared input activation E[x_c²] of a linear layer y = W x ("act").
// Parts: cherry.positions uint8 (bits.h coding), cherry.values [count] in the value dtype.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace deltakit {

struct CherryParams {
  double frac = 0.01;
  bool per_row = true;
  bool scope_model = false;              // one budget over the whole model (needs a ScoreCut)
  std::string importance = "magnitude";  // magnitude | fisher | act
  std::string file;                      // fisher/act: the importance file
};

struct Importance {
  enum class Kind { None, PerElement, PerColumn } kind = Kind::None;
  std::span<const float> h;  // numel (PerElement) or cols (PerColumn) non-negative values
};

uint64_t cherry_count(double frac, uint64_t unit);  // ceil(frac · unit), at most unit
// s_i = H_ii · (δ_i − δ̂_i)², the one definition both the per-tensor and the model-wide paths use.
std::vector<float> cherry_scores(std::span<const float> delta, std::span<const float> reconstruction, uint64_t cols,
                                 const Importance& imp);
// The same for the entries [first, first + delta.size()) of a tensor with `cols` columns, into out.
void cherry_scores_into(std::span<const float> delta, std::span<const float> reconstruction, uint64_t first,
                        uint64_t cols, const Importance& imp, float* out);
// Sorted positions of the kept entries (per row or per tensor; scope=model goes through
// select_by_cut in src/codec/score_cut.h instead).
std::vector<uint64_t> cherry_select(const CherryParams& prm, std::span<const float> delta,
                                    std::span<const float> reconstruction, uint64_t rows, uint64_t cols,
                                    const Importance& imp);

}  // namespace deltakit
