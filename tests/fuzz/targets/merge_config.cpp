// A mergekit-style merge config (src/merge/merge_config.h), with every parameter looked up for a
// few tensor names as the merge does.
#include "src/merge/merge_config.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  deltakit::fuzz::expect_clean([&] {
    const deltakit::MergeConfig c = deltakit::parse_merge_config(text, "merge.yml");
    for (const char* name : {"model.embed_tokens.weight", "model.layers.1.mlp.up_proj.weight", "lm_head.weight"})
      for (int m = -1; m < static_cast<int>(c.models.size()); ++m)
        for (const char* key : {"weight", "density", "gamma", "epsilon", "lambda", "normalize", "t"})
          (void)deltakit::merge_param(c, m, key, name, 0.5, 1.0);
  });
  return 0;
}
