#include "src/core/whole_file.h"

#include <fstream>
#include <sstream>

#include "src/core/error.h"

namespace deltakit {

std::string read_whole_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::Io, path, "cannot read the " + what);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(ErrorCode::Io, path, "cannot read the " + what);
  return ss.str();
}

}  // namespace deltakit
