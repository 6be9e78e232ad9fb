// Prompt sets for the divergent-token metrics (`deltakit eval --reference`), named by a source:
//   corpus        held-out lines of the embedded base corpus, the first `length` tokens of each
//                 (byte-tokenized models)
//   skill:NAME    held-out prompts of an embedded skill ("<bos>caps kxqa=")
//   tokens:FILE   `length`-token windows spread evenly over a uint32 token file
//   lines:FILE    one prompt per line, token ids separated by spaces
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deltakit {

// Errors (deltakit::Error) name the file or the source and what is wrong.
std::vector<std::vector<int32_t>> make_prompts(const std::string& source, int64_t count, int64_t length,
                                               uint64_t vocab);

}  // namespace deltakit
