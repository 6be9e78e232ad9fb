#include "src/model/llama2c_tokenizer.h"

#include <algorithm>
#include <cstdio>

#include "formats/llama2c.h"

namespace deltakit {

Llama2cTokenizer::Llama2cTokenizer(const std::string& path, uint64_t model_vocab) {
  Llama2cVocab v = read_llama2c_vocab(path, model_vocab);
  pieces_ = std::move(v.pieces);
  scores_ = std::move(v.scores);
  for (size_t i = 0; i < pieces_.size(); ++i) sorted_.push_back({pieces_[i], static_cast<int32_t>(i)});
  std::sort(sorted_.begin(), sorted_.end());
}

int32_t Llama2cTokenizer::lookup(const std::string& piece) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), std::make_pair(piece, INT32_MIN));
  return it != sorted_.end() && it->first == piece ? it->second : -1;
}

int32_t Llama2cTokenizer::byte_token(unsigned char c) const {
  const int32_t id = lookup(std::string(1, static_cast<char>(c)));
  return id >= 0 ? id : (pieces_.size() > 258u ? c + 3 : -1);
}

std::vector<int32_t> Llama2cTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  if (text.empty()) return ids;
  // sentencepiece's dummy prefix: text starts as if after a space
  const int32_t space = lookup(" ");
  if (space >= 0) ids.push_back(space);
  // BPE merges are quadratic in the length of what they run on. A merge can never span a cut
  // made just before a character that no multi-byte piece holds past its first byte (a space,
  // a newline in sentencepiece vocabularies), so cutting there gives the same tokens as merging
  // the whole text, in linear time for real text.
  auto safe_cut = [&](char c) {
    for (const auto& p : pieces_)
      if (p.size() > 1 && p.find(c, 1) != std::string::npos) return false;
    return true;
  };
  const bool cut_space = safe_cut(' '), cut_newline = safe_cut('\n');
  size_t segment_start = 0;  // the dummy prefix merges with the first word
  auto merge_segment = [&] {
    for (;;) {
      float best = -1e30f;
      int32_t best_id = -1;
      size_t best_at = 0;
      for (size_t i = segment_start; i + 1 < ids.size(); ++i) {
        const int32_t id = lookup(pieces_[ids[i]] + pieces_[ids[i + 1]]);
        if (id >= 0 && scores_[id] > best) best = scores_[id], best_id = id, best_at = i;
      }
      if (best_id < 0) break;
      ids[best_at] = best_id;
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
    }
    segment_start = ids.size();
  };
  for (size_t i = 0; i < text.size();) {
    if (i > 0 && ((cut_space && text[i] == ' ') || (cut_newline && text[i] == '\n'))) merge_segment();
    size_t n = 1;  // one UTF-8 code point
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0xC0) n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    n = std::min(n, text.size() - i);
    const int32_t id = lookup(text.substr(i, n));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      // byte fallback <0xXX> at ids 3..258 where the vocabulary has them; <unk> where it is
      // smaller (an id past the vocabulary would index outside it in the merges below)
      for (size_t j = 0; j < n; ++j)
        ids.push_back(pieces_.size() > 258u ? static_cast<unsigned char>(text[i + j]) + 3 : 0);
    }
    i += n;
  }
  merge_segment();
  return ids;
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  int32_t prev = -1;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) continue;
    if (id <= 2) {  // <unk>, <s>, </s>
      prev = id;
      continue;
    }
    std::string p = pieces_[id];
    if ((prev == 1 || (prev == -1 && s.empty())) && !p.empty() && p[0] == ' ') p.erase(0, 1);
    unsigned byte = 0;
    if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X>", &byte) == 1) p = std::string(1, static_cast<char>(byte));
    s += p;
    prev = id;
  }
  return s;
}

std::string Llama2cTokenizer::descriptor_json() const {
  return "{\n  \"type\": \"llama2c\",\n  \"file\": \"tokenizer.bin\",\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n"
         "  \"vocab_size\": " +
         std::to_string(pieces_.size()) + "\n}\n";
}

}  // namespace deltakit
