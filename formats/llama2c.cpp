#include "formats/llama2c.h"

#include <cstdlib>
#include <cstring>

#include "src/core/error.h"
#include "src/core/whole_file.h"

namespace deltakit {

Llama2cModelFile::Llama2cModelFile(const std::string& path) : file_(path) {
  const uint64_t size = file_.size();
  if (size < 28) throw Error(ErrorCode::FileTooSmall, path, "shorter than the 28-byte llama2.c header");
  int32_t h[7];
  std::memcpy(h, file_.bytes().data(), 28);
  for (int i = 0; i < 7; ++i)
    if ((i == 5 ? (h[i] == 0) : (h[i] <= 0)) || std::abs(static_cast<int64_t>(h[i])) > (1 << 24))
      throw Error(ErrorCode::InvalidShape, path, "header field " + std::to_string(i) + " is " + std::to_string(h[i]));
  h_.dim = h[0], h_.hidden = h[1], h_.layers = h[2], h_.heads = h[3], h_.kv_heads = h[4];
  h_.vocab = static_cast<uint64_t>(std::abs(h[5])), h_.seq_len = h[6];
  h_.tied_classifier = h[5] > 0;
  if (h_.dim % h_.heads) throw Error(ErrorCode::InvalidShape, path, "dim is not a multiple of n_heads");
  if (h_.heads % h_.kv_heads) throw Error(ErrorCode::InvalidShape, path, "n_heads is not a multiple of n_kv_heads");
  // every field is below 2^24, so no product below overflows 64 bits
  const uint64_t D = h_.dim, F = h_.hidden, L = h_.layers, V = h_.vocab, KV = h_.kv_dim(), S = h_.seq_len;
  const uint64_t floats = V * D + L * D + L * D * D + 2 * L * D * KV + L * D * D + L * D + 3 * L * D * F + D +
                          S * h_.head_size() + (h_.tied_classifier ? 0 : V * D);
  if (size != 28 + 4 * floats)
    throw Error(ErrorCode::DataLengthMismatch, path,
                "the header implies " + std::to_string(28 + 4 * floats) + " bytes, the file has " + std::to_string(size));
}

std::vector<float> Llama2cModelFile::next(uint64_t n) {
  std::vector<float> v(n);
  std::memcpy(v.data(), file_.bytes().data() + at_, n * 4);
  at_ += n * 4;
  return v;
}

Llama2cVocab read_llama2c_vocab(const std::string& path, uint64_t vocab) {
  const std::string b = read_whole_file(path, "llama2.c tokenizer");
  size_t at = 0;
  auto take = [&](void* dst, size_t n, const char* what) {
    if (b.size() - at < n)
      throw Error(ErrorCode::FileTooSmall, path,
                  std::string("truncated at byte ") + std::to_string(at) + " while reading " + what);
    std::memcpy(dst, b.data() + at, n);
    at += n;
  };
  int32_t max_len = 0;
  take(&max_len, 4, "max_token_length");
  if (max_len <= 0 || max_len > 4096) throw Error(ErrorCode::InvalidShape, path, "max_token_length out of range");
  if (vocab > (1u << 22)) throw Error(ErrorCode::InvalidShape, path, "vocabulary too large");
  Llama2cVocab v;
  for (uint64_t i = 0; i < vocab; ++i) {
    float score = 0;
    int32_t len = 0;
    take(&score, 4, "a token score");
    take(&len, 4, "a token length");
    if (len < 0 || len > max_len)
      throw Error(ErrorCode::InvalidShape, path, "token " + std::to_string(i) + " has length " + std::to_string(len));
    std::string piece(static_cast<size_t>(len), '\0');
    take(piece.data(), static_cast<size_t>(len), "a token's bytes");
    v.pieces.push_back(std::move(piece));
    v.scores.push_back(score);
  }
  return v;
}

}  // namespace deltakit
