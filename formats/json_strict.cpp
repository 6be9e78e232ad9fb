#include "formats/json_strict.h"

#include <set>
#include <vector>

#include "src/core/error.h"

namespace deltakit {

namespace {
using Json = nlohmann::json;

// A SAX handler that builds the DOM through nlohmann's own builder and checks, on the way, the
// limits and duplicate keys. (nlohmann's parse callback cannot be used: after each object it scans
// the parent for discarded values, which is quadratic in the number of entries.)
class StrictSax {
 public:
  StrictSax(Json& root, const std::string& where, JsonLimits limits, StrictJson& result)
      : dom_(root, true), where_(where), limits_(limits), result_(result) {}

  bool null() { return value() && dom_.null(); }
  bool boolean(bool v) { return value() && dom_.boolean(v); }
  bool number_integer(Json::number_integer_t v) { return value() && dom_.number_integer(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return value() && dom_.number_unsigned(v); }
  bool number_float(Json::number_float_t v, const std::string& s) { return value() && dom_.number_float(v, s); }
  bool string(std::string& v) { return value() && dom_.string(v); }
  bool binary(Json::binary_t& v) { return value() && dom_.binary(v); }
  bool start_object(std::size_t n) {
    open(false);
    return dom_.start_object(n);
  }
  bool key(std::string& k) {
    if (!keys_.back().insert(k).second && !result_.duplicate_key) result_.duplicate_key = k;
    return dom_.key(k);
  }
  bool end_object() {
    keys_.pop_back();
    open_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    open(true);
    return dom_.start_array(n);
  }
  bool end_array() {
    open_.pop_back();
    return dom_.end_array();
  }
  template <class Exception>
  bool parse_error(std::size_t pos, const std::string& token, const Exception& ex) {
    return dom_.parse_error(pos, token, ex);
  }

 private:
  struct Open {
    bool array;
    uint64_t entries;
  };
  // one more value inside the innermost container
  bool value() {
    if (!open_.empty() && open_.back().array && ++open_.back().entries > limits_.max_array_len)
      throw Error(ErrorCode::HeaderNotJson, where_,
                  "JSON with an array longer than " + std::to_string(limits_.max_array_len) + " entries");
    return true;
  }
  void open(bool array) {
    value();
    if (open_.size() >= static_cast<size_t>(limits_.max_depth))
      throw Error(ErrorCode::HeaderNotJson, where_,
                  "JSON nesting deeper than " + std::to_string(limits_.max_depth) + " levels");
    open_.push_back({array, 0});
    if (!array) keys_.emplace_back();
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  const std::string& where_;
  JsonLimits limits_;
  StrictJson& result_;
  std::vector<Open> open_;
  std::vector<std::set<std::string>> keys_;
};
}  // namespace

StrictJson parse_json_strict(std::string_view text, const std::string& where, JsonLimits limits) {
  StrictJson result;
  StrictSax sax(result.value, where, limits, result);
  try {
    Json::sax_parse(text.begin(), text.end(), &sax);
  } catch (const nlohmann::json::exception& e) {
    std::string msg = e.what();
    if (msg.size() > 160) msg = msg.substr(0, 160) + "...";
    throw Error(ErrorCode::HeaderNotJson, where, "invalid JSON: " + msg);
  }
  return result;
}

}  // namespace deltakit
