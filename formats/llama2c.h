// Karpathy's llama2.c file formats, read with every size checked before a byte is used.
//
// The model checkpoint: a 7 x int32 header — dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size (negative: an untied classifier follows the weights), seq_len — then fp32 weights
// stacked over the layers, in this order: token embedding [vocab, dim], attention norms [L, dim],
// wq [L, dim, dim], wk and wv [L, kv_dim, dim], wo [L, dim, dim], MLP norms [L, dim],
// w1 [L, hidden, dim], w2 [L, dim, hidden], w3 [L, hidden, dim], the final norm [dim], the RoPE
// tables [seq_len, head_size] (real and imaginary halves), and wcls [vocab, dim] when untied.
//
// The tokenizer: int32 max_token_length, then per token a float merge score, an int32 length and
// that many bytes (sentencepiece-style BPE by score with byte fallback <0xXX> at ids 3..258;
// <unk> 0, <s> 1, </s> 2).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "src/core/mapped_file.h"

namespace deltakit {

struct Llama2cHeader {
  uint64_t dim = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, vocab = 0, seq_len = 0;
  bool tied_classifier = true;  // vocab_size > 0 in the file
  uint64_t head_size() const { return dim / heads; }
  uint64_t kv_dim() const { return kv_heads * head_size(); }
};

// A checkpoint opened and checked: each header field positive and below 2^24 (vocab non-zero,
// negative for an untied classifier), dim a multiple of n_heads, n_heads of n_kv_heads, and the
// file exactly as long as the header implies (Error naming the file otherwise). The weights are
// then read in file order.
class Llama2cModelFile {
 public:
  explicit Llama2cModelFile(const std::string& path);
  const Llama2cHeader& header() const { return h_; }
  const std::string& path() const { return file_.path(); }
  // The next n floats of the weights (the length check guarantees they are there).
  std::vector<float> next(uint64_t n);

 private:
  MappedFile file_;
  Llama2cHeader h_;
  uint64_t at_ = 28;
};

struct Llama2cVocab {
  std::vector<std::string> pieces;
  std::vector<float> scores;
};
// The first `vocab` tokens of a tokenizer file; Error naming the file when it is truncated or a
// length is out of range.
Llama2cVocab read_llama2c_vocab(const std::string& path, uint64_t vocab);

}  // namespace deltakit
