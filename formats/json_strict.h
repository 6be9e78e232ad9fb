// JSON parsing for untrusted headers and indexes: nlohmann::json keeps the last of duplicate
// keys silently, so parsing goes through a callback that records the first duplicate key at any
// depth; the caller turns it into an Error naming the file.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace deltakit {

struct StrictJson {
  nlohmann::ordered_json value;
  std::optional<std::string> duplicate_key;  // set if some object repeated a key
};

// Throws Error(HeaderNotJson, where, ...) on malformed JSON or invalid UTF-8.
StrictJson parse_json_strict(std::string_view text, const std::string& where);

}  // namespace deltakit
