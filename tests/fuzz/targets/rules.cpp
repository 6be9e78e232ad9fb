// A rules file mapping tensor-name globs to recipes (src/pipeline/recipe_rules.h).
#include "src/pipeline/recipe_rules.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = deltakit::fuzz::as_file(data, size, "rules.yaml");
  deltakit::fuzz::expect_clean([&] {
    const auto rules = deltakit::RecipeRules::from_file(path, 0);
    (void)rules.for_tensor("model.layers.0.self_attn.q_proj.weight");
    (void)rules.summary();
  });
  return 0;
}
