// Sharded checkpoint writing (Hugging Face's greedy rule) read back through Checkpoint.
#include "formats/checkpoint.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "src/core/error.h"

using namespace deltakit;
namespace fs = std::filesystem;

TEST(Checkpoint, ShardsGreedilyAndReadsBack) {
  fs::path dir = fs::temp_directory_path() / ("dk_ck_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // 40 + 40 + 100 + 8 bytes with a 90-byte limit: [a,b] [c (alone, over the limit)] [d]
  std::vector<TensorSpec> specs = {
      {"a", DType::F32, {10}}, {"b", DType::F32, {10}}, {"c", DType::F32, {25}}, {"d", DType::I64, {1}}};
  CheckpointWriter w(dir.string(), specs, 90);
  EXPECT_EQ(w.shard_count(), 3u);
  std::vector<uint8_t> bytes(188);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 7);
  w.write(bytes.data(), 50);  // chunking across tensor and shard boundaries
  w.write(bytes.data() + 50, 138);
  w.commit();
  Checkpoint ck(dir.string());
  EXPECT_TRUE(ck.sharded());
  EXPECT_EQ(ck.shards().size(), 3u);
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c", "d"}));
  EXPECT_EQ(ck.shard_of("c"), "model-00002-of-00003.safetensors");
  auto c = ck.view("c");
  EXPECT_EQ(std::memcmp(c.bytes.data(), bytes.data() + 80, 100), 0);
  EXPECT_EQ(ck.total_tensor_bytes(), 188u);
  fs::remove_all(dir);
}

TEST(Checkpoint, ParseByteSize) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000ull);
  EXPECT_EQ(parse_byte_size("70KB"), 70'000ull);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1024"), 1024ull);
  EXPECT_THROW(parse_byte_size("lots"), Error);
  EXPECT_THROW(parse_byte_size("5XB"), Error);
  EXPECT_THROW(parse_byte_size("-1GB"), Error);
}
