// An importance file (src/pipeline/importance_files.h) as the cherry codec reads it: per-element
// (fisher) and per-column (act) values of one weight.
#include "src/pipeline/importance_files.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = deltakit::fuzz::as_file(data, size, "importance.safetensors");
  deltakit::fuzz::expect_clean([&] { (void)deltakit::ImportanceFiles().load(path, "fisher", "w", 64, 8); });
  deltakit::fuzz::expect_clean([&] { (void)deltakit::ImportanceFiles().load(path, "act", "w", 64, 8); });
  return 0;
}
