// Merge parameters as mergekit's configs write them: a value may be a scalar, a list (a gradient
// over the layers, interpolated linearly), or a list of rules [{filter: "mlp", value: ...}, ...]
// where the first rule whose filter is a substring of the tensor name wins and a rule without a
// filter, or with the filter "*", matches every tensor (as in mergekit).
//
// Position of a tensor along a gradient (ours; mergekit configs normally use slices): a tensor of
// layer l of L sits at l / (L - 1); tensors outside the layers sit at 0 when they come before
// them (embeddings) and at 1 after them (final norm, lm_head).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace deltakit {

class ParamValue {
 public:
  struct Rule {
    std::string filter;          // "" and "*" match every tensor
    std::vector<double> values;  // one value, or a gradient
  };
  ParamValue() = default;
  explicit ParamValue(double v) : rules_{{"", {v}}} {}
  explicit ParamValue(std::vector<Rule> rules) : rules_(std::move(rules)) {}

  // The value for a tensor at a position in [0, 1]; nullopt when no rule matches.
  std::optional<double> at(const std::string& tensor, double position) const;
  bool empty() const { return rules_.empty(); }
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  std::vector<Rule> rules_;
};

// The layer index in a name such as "model.layers.7.mlp.up_proj.weight" (nullopt outside layers).
std::optional<int> layer_index(const std::string& tensor);
// Position along a gradient (see above); `layers` is the model's layer count.
double gradient_position(const std::string& tensor, int layers);

}  // namespace deltakit
