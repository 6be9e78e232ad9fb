// A model's config.json (src/model/llama_config.h), as load_llama reads it.
#include "src/model/llama_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = deltakit::fuzz::as_file(data, size, "config.json");
  deltakit::fuzz::expect_clean([&] { (void)deltakit::read_llama_config(path); });
  return 0;
}
