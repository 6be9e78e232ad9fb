// Where a tensor name says which transformer layer it belongs to: "<prefix>.layers.<N>.<rest>"
// (or "layers.<N>.<rest>" at the start). Used by the merge's layer gradients and by diff's
// per-family report, so both read names the same way.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace deltakit {

struct LayerName {
  int index = 0;       // N
  size_t rest_at = 0;  // where <rest> starts in the name
};

std::optional<LayerName> parse_layer_name(const std::string& tensor);

}  // namespace deltakit
