#include "src/model/tokenizer.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "src/core/error.h"
#include "src/core/whole_file.h"
#include "src/model/llama2c_tokenizer.h"

namespace deltakit {

std::vector<int32_t> ByteTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (int32_t id : ids)
    if (id >= 0 && id < 256) s += static_cast<char>(id);
  return s;
}

std::string ByteTokenizer::descriptor_json() const {
  return "{\n  \"type\": \"bytes\",\n  \"bos_token_id\": 256,\n  \"eos_token_id\": 257,\n  \"pad_token_id\": 258,\n"
         "  \"vocab_size\": 260\n}\n";
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir, uint64_t model_vocab) {
  namespace fs = std::filesystem;
  const std::string path = (fs::path(model_dir) / kTokenizerFile).string();
  if (!fs::exists(path)) return nullptr;
  auto j = nlohmann::json::parse(read_whole_file(path, "tokenizer declaration"), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("type") || !j["type"].is_string())
    throw Error(ErrorCode::HeaderNotJson, path, "not a tokenizer declaration (an object with a \"type\")");
  std::unique_ptr<Tokenizer> t;
  const std::string type = j["type"];
  if (type == "bytes") {
    t = std::make_unique<ByteTokenizer>();
  } else if (type == "llama2c") {
    if (j.contains("file") && !j["file"].is_string())
      throw Error(ErrorCode::HeaderNotJson, path, "\"file\" is not a string");
    const std::string file = j.value("file", std::string("tokenizer.bin"));
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos)
      throw Error(ErrorCode::PathEscapes, path, "the tokenizer file must be a name inside the model folder");
    t = std::make_unique<Llama2cTokenizer>((fs::path(model_dir) / file).string(), model_vocab);
  } else {
    throw Error(ErrorCode::Usage, path, "unknown tokenizer type \"" + type + "\" (bytes, llama2c)");
  }
  if (t->vocab() > model_vocab)
    throw Error(ErrorCode::ShapeMismatch, path,
                "the tokenizer has " + std::to_string(t->vocab()) + " tokens, the model only " +
                    std::to_string(model_vocab));
  return t;
}

std::vector<int32_t> read_token_file(const std::string& path, uint64_t vocab) {
  const std::string bytes = read_whole_file(path, "token file");
  if (bytes.size() % 4)
    throw Error(ErrorCode::SizeMismatch, path, "a token file holds little-endian uint32 ids; its size " +
                                                   std::to_string(bytes.size()) + " is not a multiple of 4");
  std::vector<int32_t> ids(bytes.size() / 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data() + 4 * i);
    const uint32_t v = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    if (v >= vocab)
      throw Error(ErrorCode::InvalidShape, path,
                  "token " + std::to_string(i) + " is id " + std::to_string(v) + ", outside the model's vocabulary of " +
                      std::to_string(vocab));
    ids[i] = static_cast<int32_t>(v);
  }
  return ids;
}

}  // namespace deltakit
