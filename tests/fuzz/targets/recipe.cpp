// The recipe grammar (src/codec/recipe.h). Also a property: a recipe's canonical text parses back
// to the same canonical text.
#include <cstdlib>

#include "src/codec/recipe.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  deltakit::fuzz::expect_clean([&] {
    const deltakit::Recipe r = deltakit::parse_recipe(text, 7);
    const std::string canonical = r.canonical();
    if (deltakit::parse_recipe(canonical, 7).canonical() != canonical) {
      std::fprintf(stderr, "canonical text does not round-trip: %s\n", canonical.c_str());
      std::abort();
    }
  });
  return 0;
}
