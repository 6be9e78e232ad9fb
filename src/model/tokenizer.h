// Tokenizers the engine reads text with. deltakit's own models use bytes: ids 0..255 are the
// bytes of UTF-8 text, then <bos> 256, <eos> 257, <pad> 258, <unused> 259 (vocab 260). A model
// folder names its tokenizer in deltakit_tokenizer.json; models without one are evaluated on
// pre-tokenized files (little-endian uint32 ids).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace deltakit {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;  // no <bos>
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t bos() const = 0;
  virtual int32_t eos() const = 0;
  virtual uint64_t vocab() const = 0;
  // The id of a one-byte string such as "\n" (-1 if the tokenizer has none).
  virtual int32_t byte_token(unsigned char c) const = 0;
  // What deltakit_tokenizer.json says (and which side files it needs).
  virtual std::string descriptor_json() const = 0;
};

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int32_t kBos = 256, kEos = 257, kPad = 258, kVocab = 260;
  std::vector<int32_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t bos() const override { return kBos; }
  int32_t eos() const override { return kEos; }
  uint64_t vocab() const override { return kVocab; }
  int32_t byte_token(unsigned char c) const override { return c; }
  std::string descriptor_json() const override;
};

constexpr const char* kTokenizerFile = "deltakit_tokenizer.json";

// The tokenizer a model folder declares; nullptr when it declares none. Error naming the file
// when the declaration is malformed or its vocabulary exceeds the model's.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, uint64_t model_vocab);

// A file of little-endian uint32 token ids. Error naming the file if its size is not a multiple
// of 4 or an id is not below `vocab`.
std::vector<int32_t> read_token_file(const std::string& path, uint64_t vocab);

}  // namespace deltakit
