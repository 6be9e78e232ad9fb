// The tokenizer of llama2.c models (file format: formats/llama2c.h): sentencepiece-style BPE by
// merge score with byte fallback <0xXX> at ids 3..258; <unk> 0, <s> 1, </s> 2.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "src/model/tokenizer.h"

namespace deltakit {

class Llama2cTokenizer : public Tokenizer {
 public:
  // Error naming the file on a truncated or inconsistent file; `model_vocab` is the count to read.
  Llama2cTokenizer(const std::string& path, uint64_t model_vocab);
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t bos() const override { return 1; }
  int32_t eos() const override { return 2; }
  uint64_t vocab() const override { return pieces_.size(); }
  int32_t byte_token(unsigned char c) const override;
  std::string descriptor_json() const override;

 private:
  int32_t lookup(const std::string& piece) const;
  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::vector<std::pair<std::string, int32_t>> sorted_;  // for lookup by piece
};

}  // namespace deltakit
