#include "formats/json_strict.h"

#include <set>
#include <vector>

#include "src/core/error.h"

namespace deltakit {

StrictJson parse_json_strict(std::string_view text, const std::string& where) {
  StrictJson result;
  std::vector<std::set<std::string>> keys_per_object;
  auto callback = [&](int /*depth*/, nlohmann::ordered_json::parse_event_t event,
                      nlohmann::ordered_json& parsed) {
    using E = nlohmann::ordered_json::parse_event_t;
    if (event == E::object_start) {
      keys_per_object.emplace_back();
    } else if (event == E::object_end) {
      if (!keys_per_object.empty()) keys_per_object.pop_back();
    } else if (event == E::key && !keys_per_object.empty()) {
      const std::string& key = parsed.get_ref<const std::string&>();
      if (!keys_per_object.back().insert(key).second && !result.duplicate_key)
        result.duplicate_key = key;
    }
    return true;
  };
  try {
    result.value = nlohmann::ordered_json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::exception& e) {
    std::string msg = e.what();
    if (msg.size() > 160) msg = msg.substr(0, 160) + "...";
    throw Error(ErrorCode::HeaderNotJson, where, "invalid JSON: " + msg);
  }
  return result;
}

}  // namespace deltakit
