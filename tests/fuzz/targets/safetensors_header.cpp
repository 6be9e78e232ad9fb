// A safetensors file's header (formats/safetensors.h), as every checkpoint reader parses it.
#include "formats/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  deltakit::fuzz::expect_clean([&] {
    const auto h = deltakit::parse_safetensors_header({data, size}, "fuzz.safetensors");
    (void)h;
  });
  return 0;
}
