#include "src/eval/prompts.h"

#include <sstream>

#include "src/core/error.h"
#include "src/core/whole_file.h"
#include "src/eval/skills.h"
#include "src/model/tokenizer.h"

namespace deltakit {

namespace {
std::vector<std::vector<int32_t>> from_lines(const std::string& path, int64_t count, uint64_t vocab) {
  std::istringstream in(read_whole_file(path, "prompt file"));
  std::vector<std::vector<int32_t>> out;
  std::string line;
  for (int64_t n = 1; std::getline(in, line) && static_cast<int64_t>(out.size()) < count; ++n) {
    std::istringstream words(line);
    std::vector<int32_t> ids;
    std::string w;
    while (words >> w) {
      size_t used = 0;
      long long v = -1;
      try {
        v = std::stoll(w, &used);
      } catch (const std::exception&) {
      }
      if (used != w.size() || v < 0 || static_cast<uint64_t>(v) >= vocab)
        throw Error(ErrorCode::Usage, path,
                    "line " + std::to_string(n) + ": \"" + w + "\" is not a token id below " + std::to_string(vocab));
      ids.push_back(static_cast<int32_t>(v));
    }
    if (!ids.empty()) out.push_back(std::move(ids));
  }
  if (out.empty()) throw Error(ErrorCode::Usage, path, "holds no prompt (one prompt per line of token ids)");
  return out;
}

std::vector<std::vector<int32_t>> windows(const std::string& path, int64_t count, int64_t length, uint64_t vocab) {
  const std::vector<int32_t> ids = read_token_file(path, vocab);
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < length) throw Error(ErrorCode::Usage, path, "holds " + std::to_string(n) + " tokens, fewer than one prompt");
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t start = count > 1 ? i * (n - length) / (count - 1) : 0;
    out.emplace_back(ids.begin() + start, ids.begin() + start + length);
  }
  return out;
}
}  // namespace

std::vector<std::vector<int32_t>> make_prompts(const std::string& source, int64_t count, int64_t length,
                                               uint64_t vocab) {
  if (count < 1 || length < 1) throw Error(ErrorCode::Usage, "", "--prompts and --prompt-len must be >= 1");
  if (source.rfind("lines:", 0) == 0) return from_lines(source.substr(6), count, vocab);
  if (source.rfind("tokens:", 0) == 0) return windows(source.substr(7), count, length, vocab);
  const bool skill = source.rfind("skill:", 0) == 0;
  if (source != "corpus" && !skill)
    throw Error(ErrorCode::Usage, "",
                "unknown prompt source \"" + source + "\" (corpus, skill:NAME, tokens:FILE, lines:FILE)");
  if (vocab != ByteTokenizer::kVocab)
    throw Error(ErrorCode::Usage, "", "prompts from " + source + " are byte tokens; this model's vocabulary differs");
  if (skill && !is_skill(source.substr(6))) throw Error(ErrorCode::Usage, "", "unknown skill in \"" + source + "\"");
  ByteTokenizer tok;
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < count; ++i) {
    std::vector<int32_t> p = {ByteTokenizer::kBos};
    const std::string text = skill ? skill_example(source.substr(6), kEvalStream, static_cast<uint64_t>(i)).prompt
                                   : corpus_line(kEvalStream, static_cast<uint64_t>(i), 0.0);
    for (int32_t id : tok.encode(text)) p.push_back(id);
    if (!skill && static_cast<int64_t>(p.size()) > length) p.resize(static_cast<size_t>(length));
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace deltakit
