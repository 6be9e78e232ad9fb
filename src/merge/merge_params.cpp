#include "src/merge/merge_params.h"

#include <algorithm>
#include <cmath>

#include "src/core/layer_name.h"

namespace deltakit {

std::optional<double> ParamValue::at(const std::string& tensor, double position) const {
  for (const Rule& r : rules_) {
    // as mergekit: no filter or "*" matches every tensor, any other filter is a substring
    if (!r.filter.empty() && r.filter != "*" && tensor.find(r.filter) == std::string::npos) continue;
    if (r.values.empty()) continue;
    if (r.values.size() == 1) return r.values[0];
    const double x = std::clamp(position, 0.0, 1.0) * static_cast<double>(r.values.size() - 1);
    const size_t i = std::min(static_cast<size_t>(std::floor(x)), r.values.size() - 2);
    const double f = x - static_cast<double>(i);
    return r.values[i] * (1 - f) + r.values[i + 1] * f;
  }
  return std::nullopt;
}

std::optional<int> layer_index(const std::string& tensor) {
  if (auto l = parse_layer_name(tensor)) return l->index;
  return std::nullopt;
}

// mergekit v0.1.4 (plan.py): layer i of L at i/(L - 1), the one layer of a one-layer model at 1,
// and every tensor outside the layers (embeddings before them, norm and lm_head after) at 0
double gradient_position(const std::string& tensor, int layers) {
  if (auto l = layer_index(tensor)) return layers > 1 ? std::min(1.0, *l / static_cast<double>(layers - 1)) : 1.0;
  return 0.0;
}

}  // namespace deltakit
