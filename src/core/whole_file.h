// Small files read whole (configs, tokenizers, texts, side files). Error(Io) naming the file
// and what it was meant to be when it cannot be read.
#pragma once

#include <string>

namespace deltakit {

std::string read_whole_file(const std::string& path, const std::string& what);

}  // namespace deltakit
