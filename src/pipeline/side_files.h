// Non-weight files that travel with a checkpoint (config.json, tokenizer files, ...).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace deltakit {

// Text side files of a checkpoint folder (UTF-8, at most 16 MB each) as name -> contents;
// binary ones (e.g. tokenizer.model) are listed in `skipped`.
std::map<std::string, std::string> read_text_side_files(const std::string& folder,
                                                        std::vector<std::string>* skipped);

// Copy every side file of `from` into `to`, then write `overrides` over them.
void write_side_files(const std::string& from, const std::string& to,
                      const std::map<std::string, std::string>& overrides);

}  // namespace deltakit
