// Sparsification of one task vector δ before it is mixed (algorithms.md §8), with mergekit's
// semantics (mergekit/sparsify.py), in place on fp32 values:
//   magnitude          keep the k = floor(density·n) largest |δ| (TIES trim)
//   random             DARE: drop each entry with probability 1 − density (counter RNG)
//   magnitude_outliers breadcrumbs: drop the floor(gamma·n) largest, then the smallest until
//                      floor(density·n) remain
//   della_magprune     DELLA: per row, keep probability rises linearly with the magnitude rank
//                      from density − ε (smallest) to density + ε (largest)
// Survivors are then rescaled: none; l1 / l2 / linf — times ‖δ‖/‖δ_kept‖ in that norm
// (mergekit's `rescale: true` is l1); inverse — times 1/keep-probability (the DARE and DELLA
// papers' 1/(1 − p)). Ties in magnitude are broken by the lower index, so results are exact and
// reproducible (torch's argsort leaves them unspecified).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "src/codec/score_cut.h"

namespace deltakit {

enum class SparsifyMethod { None, Magnitude, Random, MagnitudeOutliers, DellaMagprune };
enum class RescaleNorm { None, L1, L2, Linf, Inverse };

struct SparsifyOptions {
  SparsifyMethod method = SparsifyMethod::None;
  double density = 1.0;
  double gamma = 0.01;   // magnitude_outliers
  double epsilon = 0.0;  // della_magprune
  RescaleNorm rescale = RescaleNorm::None;
  uint64_t seed = 0;    // random, della_magprune
  std::string rng_key;  // tensor name + model: the counter RNG's stream
};

// `cols`: the row length for della's per-row ranks (the tensor's last dimension; n for 1-D).
// Throws Error(InvalidValue) for parameters out of range (density outside [0, 1], della's
// density ± epsilon outside (0, 1)).
void sparsify(std::span<float> delta, uint64_t cols, const SparsifyOptions& o);

// sparsify() over δ handed a block at a time, for the methods whose statistics are a tensor-wide
// cut or norms (none, magnitude, random): while needs_pass(), observe() every block in order and
// end_pass(); then drop() every block in order gives sparsify's values, bit for bit. Blocks start
// on multiples of 8 (the norms' lanes). The constructor checks the parameters as sparsify does.
class StreamSparsifier {
 public:
  static bool supports(const SparsifyOptions& o);
  StreamSparsifier(uint64_t n, const SparsifyOptions& o);
  ~StreamSparsifier();
  bool needs_pass() const;
  bool active() const { return active_; }  // false: drop() leaves every value as it is
  void observe(uint64_t first, std::span<const float> block);
  void end_pass();
  void drop(uint64_t first, std::span<float> block);

 private:
  struct State;
  void keep_mask(uint64_t first, const float* x, size_t len, ScoreCut& cut, uint8_t* keep) const;
  SparsifyOptions o_;
  bool active_ = false, norms_left_ = false;
  std::unique_ptr<State> s_;
};

const char* sparsify_name(SparsifyMethod m);
const char* rescale_name(RescaleNorm r);
RescaleNorm parse_rescale(const std::string& s);  // none|l1|l2|linf|inverse

}  // namespace deltakit
