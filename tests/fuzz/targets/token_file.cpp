// A file of little-endian uint32 token ids (src/model/tokenizer.h).
#include "src/model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = deltakit::fuzz::as_file(data, size, "tokens.u32");
  deltakit::fuzz::expect_clean([&] { (void)deltakit::read_token_file(path, 512); });
  return 0;
}
