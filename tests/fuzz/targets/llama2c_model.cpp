// A llama2.c checkpoint (formats/llama2c.h): header checks, then every weight read.
#include "formats/llama2c.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = deltakit::fuzz::as_file(data, size, "model.bin");
  deltakit::fuzz::expect_clean([&] {
    deltakit::Llama2cModelFile f(path);
    const auto& h = f.header();
    // the layout's largest block, read as the import does (sizes were checked against the file)
    (void)f.next(h.vocab * h.dim);
  });
  return 0;
}
