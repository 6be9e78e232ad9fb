#include "src/pipeline/pair_check.h"

#include "src/core/error.h"

namespace deltakit {

namespace {
std::string first_few(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 3; ++i) s += (i ? ", '" : "'") + names[i] + "'";
  if (names.size() > 3) s += " and " + std::to_string(names.size() - 3) + " more";
  return s;
}
}  // namespace

void check_same_tensors(const Checkpoint& base, const Checkpoint& other) {
  std::vector<std::string> only_base, only_other;
  for (const auto& n : base.names())
    if (!other.find(n)) only_base.push_back(n);
  for (const auto& n : other.names())
    if (!base.find(n)) only_other.push_back(n);
  if (!only_base.empty() || !only_other.empty()) {
    std::string msg = "tensor sets differ from the base " + base.path() + ":";
    if (!only_other.empty()) msg += " only here: " + first_few(only_other) + ";";
    if (!only_base.empty()) msg += " only in the base: " + first_few(only_base) + ";";
    msg.pop_back();
    throw Error(ErrorCode::TensorSetMismatch, other.path(), msg);
  }
  for (const auto& n : base.names()) {
    const auto& b = *base.at(n).entry;
    const auto& o = *other.at(n).entry;
    if (b.shape != o.shape)
      throw Error(
          ErrorCode::ShapeMismatch, other.path(),
          "tensor '" + n + "' has shape " + shape_string(o.shape) + " but the base's is " + shape_string(b.shape));
    if (b.dtype != o.dtype)
      throw Error(ErrorCode::DtypeMismatch, other.path(),
                  "tensor '" + n + "' is " + std::string(dtype_name(o.dtype)) + " but the base's is " +
                      std::string(dtype_name(b.dtype)));
  }
}

}  // namespace deltakit
