// Karpathy's llama2.c formats: the model checkpoint (a 7 x int32 header — dim, hidden_dim,
// n_layers, n_heads, n_kv_heads, vocab_size (negative: untied classifier), seq_len — then fp32
// weights layer-stacked: embedding, attention norms, wq, wk, wv, wo, MLP norms, w1, w2, w3, final
// norm, the RoPE tables, and wcls when untied) and the tokenizer (int32 max_token_length, then per
// token a float merge score, an int32 length and the bytes; sentencepiece-style BPE by score with
// byte fallback <0xXX> at ids 3..258; <unk> 0, <s> 1, </s> 2).
#pragma once

#include <string>
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

// Convert a llama2.c checkpoint (+ its tokenizer) into an HF-layout folder: safetensors with HF
// names (q/k rows permuted from llama2.c's interleaved rotary pairs to HF's rotate_half layout),
// config.json, tokenizer.bin and deltakit_tokenizer.json. Every size in the header is checked
// against the file length before a weight is read.
void import_llama2c(const std::string& model_bin, const std::string& tokenizer_bin, const std::string& out_dir,
                    bool overwrite);

}  // namespace deltakit
