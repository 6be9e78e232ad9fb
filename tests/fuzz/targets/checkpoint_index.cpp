// model.safetensors.index.json beside two valid shards: a sharded checkpoint opened as every
// command opens one (formats/checkpoint.h), then each tensor it names viewed.
#include <filesystem>
#include <fstream>

#include "formats/checkpoint.h"
#include "tests/fuzz/fuzz_util.h"

namespace {
// a shard holding one F32 tensor of 4 values
void write_shard(const std::string& path, const std::string& tensor) {
  const std::string json = "{\"" + tensor + "\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
  std::string header = json + std::string((8 - json.size() % 8) % 8, ' ');
  const uint64_t n = header.size();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << std::string(16, '\0');
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const std::string d = deltakit::fuzz::work_dir() + "/ckpt";
    std::filesystem::create_directories(d);
    write_shard(d + "/model-00001-of-00002.safetensors", "a.weight");
    write_shard(d + "/model-00002-of-00002.safetensors", "b.weight");
    return d;
  }();
  const std::string index = dir + "/" + deltakit::kIndexFileName;
  std::ofstream(index, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  deltakit::fuzz::expect_clean([&] {
    deltakit::Checkpoint c(dir);
    for (const auto& name : c.names()) (void)c.view(name);
  });
  return 0;
}
