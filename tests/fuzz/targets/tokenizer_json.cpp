// deltakit_tokenizer.json in a model folder (src/model/tokenizer.h), then the tokenizer it
// declares used on text.
#include <filesystem>
#include <fstream>

#include "src/model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = deltakit::fuzz::work_dir() + "/tokmodel";
    std::filesystem::create_directories(d);
    // a llama2.c tokenizer for declarations of that type: <unk> <s> </s>, 256 byte pieces, " "
    std::ofstream f(d + "/tokenizer.bin", std::ios::binary | std::ios::trunc);
    auto put = [&](const std::string& piece) {
      const float score = 0;
      const int32_t len = static_cast<int32_t>(piece.size());
      f.write(reinterpret_cast<const char*>(&score), 4).write(reinterpret_cast<const char*>(&len), 4) << piece;
    };
    const int32_t max_len = 6;
    f.write(reinterpret_cast<const char*>(&max_len), 4);
    for (const char* s : {"<unk>", "<s>", "</s>"}) put(s);
    for (int b = 0; b < 256; ++b) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      put(hex);
    }
    put(" ");
    return d;
  }();
  std::ofstream(dir + "/" + deltakit::kTokenizerFile, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  deltakit::fuzz::expect_clean([&] {
    const auto tok = deltakit::load_tokenizer(dir, 512);
    if (tok) (void)tok->decode(tok->encode("hello, world\n"));
  });
  return 0;
}
