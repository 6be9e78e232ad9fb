// A llama2.c tokenizer (src/model/llama2c_tokenizer.h): read for a vocabulary size taken from the
// input's first two bytes, then used on text as eval and generate use it.
#include "src/model/llama2c_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint64_t vocab = 1 + (data[0] | (data[1] << 8)) % 1024;
  const std::string path = deltakit::fuzz::as_file(data + 2, size - 2, "tokenizer.bin");
  deltakit::fuzz::expect_clean([&] {
    deltakit::Llama2cTokenizer tok(path, vocab);
    const auto ids = tok.encode("Once upon a time, \xc3\xa9t\xc3\xa9 \x01\xff\n");
    (void)tok.decode(ids);
    (void)tok.byte_token('\n');
  });
  return 0;
}
