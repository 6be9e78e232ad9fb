// JSON parsing for untrusted headers and indexes. Three guards a plain parse lacks:
//  - nlohmann::json keeps the last of duplicate keys silently, so parsing goes through a callback
//    that records the first duplicate key at any depth; the caller turns it into an Error;
//  - objects are sorted maps (O(log n) per key): an insertion-ordered map checks each new key
//    against all earlier ones, which made a 100k-entry header take ~40 s to parse;
//  - the nesting depth and the length of any one array are capped by the caller, who knows the
//    format's shape: a 90 MB header of tiny nested arrays would otherwise become 3.4 GB of nodes.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace deltakit {

struct StrictJson {
  nlohmann::json value;
  std::optional<std::string> duplicate_key;  // set if some object repeated a key
};

struct JsonLimits {
  int max_depth = 64;                   // containers nested deeper are refused
  uint64_t max_array_len = UINT64_MAX;  // any one array longer is refused
};

// Throws Error(HeaderNotJson, where, ...) on malformed JSON, invalid UTF-8, or a limit exceeded.
StrictJson parse_json_strict(std::string_view text, const std::string& where, JsonLimits limits = {});

}  // namespace deltakit
