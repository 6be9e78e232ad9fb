// The delta-parameter edits of "A Unified View of Delta Parameter Editing" (Tang et al. 2024;
// algorithms.md §4), as the change D = W_edit − W_post they make to every edited matrix (ΔW = W_post −
// W_pre; the q/k/v/o/gate/up/down projections, as the paper edits the linear layers):
//   dare:p=P,k=K          random M ~ Bernoulli(p) (1 = drop; Philox keyed by seed, tensor, index):
//                         W = W_pre + k·M⊙ΔW + (1 − kp)/(1 − p)·(1 − M)⊙ΔW, so
//                         D = (k − 1)(M − p)/(1 − p) ⊙ ΔW  (k = 0: DARE)
//   dare_sign:k=K         the same with M chosen by the sign of ΔW (M = [ΔW > 0], p its share)
//   dare_grad:k=K         M = [ΔW·∇L > 0] (∇L at W_post on the calibration data), p its share
//   drop_only:p=P         DARE without the rescale: D = −M⊙ΔW
//   magnitude:p=P         magnitude pruning (TIES trim): floor(p·n) of the smallest |ΔW| per matrix
//                         dropped, no rescale (the merges' cut, src/codec/score_cut.h: ties keep the
//                         lower index)
//   bitdelta:m=M          m·mean|ΔW|·sign(ΔW) per matrix (m = 1: BitDelta)
//   bitdelta_random:dist=normal|uniform   signs kept, magnitudes drawn (half-normal / uniform on
//                         [0, 2μ]) with the matrix's mean μ = mean|ΔW|
//   bitdelta_levels:bits=B  multi-level BitDelta: 2^(B−1) magnitude blocks (1 sign bit + B − 1)
//   lowrank:rank=R        truncated SVD of ΔW
//   expo:alpha=A          W_post + A·ΔW (A < 0 interpolates toward W_pre, A > 0 extrapolates)
//   model:path=DIR[,label=NAME]  the edited matrices of another checkpoint of the same shapes:
//                         D = W_DIR − W_post, e.g. a base + adapter made by compress (--distill)
//                         and apply; the row is named model:label=NAME (else model:path=DIR)
// seed=S (default 0) keys the random edits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/model/llama_params.h"

namespace deltakit {

struct DeltaEdit {
  std::string kind;
  double p = 0.5, k = 0.0, m = 1.0, alpha = 0.0;
  int64_t rank = 8, bits = 1;
  std::string dist = "normal";
  std::string path, label;  // model
  uint64_t seed = 0;
  std::string text() const;  // canonical, e.g. "dare:p=0.5,k=0"
};

// Throws Error(Usage) naming the problem.
DeltaEdit parse_delta_edit(const std::string& text);

// Whether the tensor is one the edits touch (2-D projections).
bool is_edited_matrix(const ParamSlice& s);

// D in the parameters' layout (zero outside the edited matrices). `grad_post` (∇L at W_post, same
// layout) is needed by dare_grad only. A model edit loads its folder (Error naming it when its
// shapes differ from W_post's).
std::vector<float> edit_direction(const DeltaEdit& e, const LlamaParams& pre, const LlamaParams& post,
                                  const std::vector<float>* grad_post = nullptr);

}  // namespace deltakit
