#include "src/core/layer_name.h"

#include <cctype>

namespace deltakit {

std::optional<LayerName> parse_layer_name(const std::string& tensor) {
  const std::string marker = "layers.";
  for (size_t at = tensor.find(marker); at != std::string::npos; at = tensor.find(marker, at + 1)) {
    if (at > 0 && tensor[at - 1] != '.') continue;  // "sublayers.3." is not a layer
    size_t end = at + marker.size();
    int v = 0;
    while (end < tensor.size() && std::isdigit(static_cast<unsigned char>(tensor[end])) && v < 1'000'000)
      v = v * 10 + (tensor[end++] - '0');
    if (end > at + marker.size() && end < tensor.size() && tensor[end] == '.') return LayerName{v, end + 1};
  }
  return std::nullopt;
}

}  // namespace deltakit
