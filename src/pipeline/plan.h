// `deltakit plan`: choose a recipe per tensor family by measurement (algorithms.md §5, §7). Each family
// (a tensor name with its layer index taken out: "mlp.down_proj.weight", "lm_head.weight") is
// compressed alone with each candidate recipe and its damage measured:
//   fdt      N − mean first divergent token of the model with only that family compressed, against
//            the fine-tune (FDTM; src/eval/divergence.h), on the given prompts;
//   hessian  Σ_i H_ii (δ_i − δ̂_i)² over the family, H a Fisher file (deltakit importance) or 1 —
//            the cheap mode: no model runs.
// Sizes are estimates: each tensor's parts zstd-compressed at the adapter's level (raw: its fp32
// delta). Then one recipe per family is allocated to meet the byte budget with the least summed
// damage (a multiple-choice knapsack, by dynamic programming over the bytes), and the
// chosen plan and every uniform candidate are measured whole (FDT, SDT, KL, skill accuracy).
// 1-D tensors (norms, biases) stay raw. Engine-loadable models only (src/model).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "formats/h5_chunks.h"

namespace deltakit {

struct PlanOptions {
  std::string base, finetuned;
  std::vector<std::string> candidates;  // recipes; "raw" is always among them
  uint64_t budget_bytes = 0;            // 0: budget_like
  std::string budget_like;              // a candidate: the budget is its uniform size
  std::string mode = "fdt";             // fdt | hessian
  std::string fisher;                   // hessian: a fisher importance file ("" = H 1)
  std::string prompts = "corpus";       // fdt and the final measures (src/eval/prompts.h)
  int64_t prompt_count = 32, prompt_len = 16, new_tokens = 32;
  std::vector<std::string> tasks;  // skills to measure exact match on, plan vs uniform
  int64_t task_samples = 200;
  uint64_t seed = 0;
  int zstd_level = kDefaultZstdLevel;
};

struct PlanCell {  // one family under one candidate
  std::string family, recipe;
  uint64_t bytes = 0;
  double damage = 0;  // what the allocation adds up: mean KL (fdt mode) or Σ H (δ − δ̂)² (hessian)
  double fdt = 0;     // fdt mode: mean FDT with only this family compressed
};

struct PlanMeasure {  // a whole model: the plan or a uniform recipe
  std::string label;
  uint64_t bytes = 0;
  double fdt_mean = 0, sdt_mean = 0, kl_mean = 0;
  std::vector<double> accuracy;  // per task
};

struct PlanReport {
  std::vector<std::string> families, candidates;
  std::vector<PlanCell> cells;           // families × candidates
  std::vector<std::string> choice;       // per family: the plan
  std::vector<std::string> allocated;    // per family: the knapsack's answer (the plan unless a
                                         // uniform recipe measured better)
  uint64_t budget = 0, fixed_bytes = 0;  // fixed: the tensors that stay raw regardless
  PlanMeasure plan;
  std::vector<PlanMeasure> uniform;  // per candidate
  std::string rules_yaml;            // for compress --rules
};

PlanReport run_plan(const PlanOptions& o);

}  // namespace deltakit
