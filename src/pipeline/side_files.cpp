#include "src/pipeline/side_files.h"

#include <filesystem>

#include "formats/checkpoint.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/whole_file.h"

namespace fs = std::filesystem;

namespace deltakit {

namespace {
constexpr uint64_t kMaxSideFile = 16u << 20;

bool is_utf8_text(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0) return false;
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    i += len;
  }
  return true;
}
}  // namespace

std::map<std::string, std::string> read_text_side_files(const std::string& folder, std::vector<std::string>* skipped) {
  std::map<std::string, std::string> out;
  for (const auto& leaf : checkpoint_side_files(folder)) {
    fs::path p = fs::path(folder) / leaf;
    std::error_code ec;
    if (fs::file_size(p, ec) > kMaxSideFile) {
      if (skipped) skipped->push_back(leaf);
      continue;
    }
    std::string text = read_whole_file(p.string(), "side file");
    if (is_utf8_text(text))
      out[leaf] = std::move(text);
    else if (skipped)
      skipped->push_back(leaf);
  }
  return out;
}

void write_side_files(const std::string& from, const std::string& to,
                      const std::map<std::string, std::string>& overrides) {
  for (const auto& leaf : checkpoint_side_files(from)) {
    if (overrides.count(leaf)) continue;
    write_file_atomically((fs::path(to) / leaf).string(),
                          read_whole_file((fs::path(from) / leaf).string(), "side file"));
  }
  for (const auto& [leaf, text] : overrides) write_file_atomically((fs::path(to) / leaf).string(), text);
}

}  // namespace deltakit
