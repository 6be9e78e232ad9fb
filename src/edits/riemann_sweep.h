// `deltakit riemann`: a sweep of delta edits over one fine-tune (algorithms.md §4). Every edit's
// change D is measured as ΔL on the same held-out batches and estimated by Riemann sums, after
// L(W_pre), L(W_post) and ∇L(W_post) are computed once; optionally each edited model's accuracy
// on a skill and its divergent tokens against the fine-tune (whose continuations are generated
// once). An edit is competitive when |ΔL| <= tolerance × the fine-tune's own gain
// L(W_pre) − L(W_post), decreased above, improved below.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "src/edits/riemann.h"

namespace deltakit {

struct RiemannSweepOptions {
  std::string base, finetuned;  // W_pre and W_post folders
  std::vector<std::string> edits;
  std::vector<int64_t> C = {1, 2, 5, 10};
  std::string calibration = "corpus";  // held-out data (src/eval/calibration.h)
  int64_t samples = 32, seq_len = 64;
  double tolerance = 0.05;
  std::string task;  // "" or a skill: accuracy of each edited model
  int64_t task_samples = 200;
  std::string prompts_from;  // "" or a prompt source: FDT against the fine-tune
  int64_t prompts = 32, new_tokens = 8;
};

struct RiemannSweepStart {
  double loss_pre = 0, loss_post = 0, gain = 0, tolerance = 0;  // tolerance in loss units
  bool accuracy = false, fdt = false;                           // which columns the rows carry
};

struct RiemannEditRow {
  std::string edit;  // its canonical text
  RiemannReport report;
  std::string verdict;             // competitive | decreased | improved
  double accuracy = -1, fdt = -1;  // -1: not measured
};

// Every edit is parsed and every model folder checked before the first held-out pass. `on_start`
// runs once the reference losses are known, `on_row` as each edit is measured.
void riemann_sweep(const RiemannSweepOptions& o, const std::function<void(const RiemannSweepStart&)>& on_start,
                   const std::function<void(const RiemannEditRow&)>& on_row);

}  // namespace deltakit
