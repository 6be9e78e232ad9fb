// Outputs are complete or absent: an uncommitted file or folder leaves nothing behind, and the
// output-path checks refuse inputs and existing paths.
#include "src/core/atomic_output.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "src/core/error.h"

using namespace deltakit;
namespace fs = std::filesystem;

namespace {
fs::path fresh_dir(const char* tag) {
  fs::path d = fs::temp_directory_path() / (std::string("dk_") + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
size_t entries(const fs::path& d) { return std::distance(fs::directory_iterator(d), fs::directory_iterator()); }
}  // namespace

TEST(AtomicOutput, UncommittedFileLeavesNothing) {
  fs::path d = fresh_dir("af");
  {
    AtomicFile f((d / "out.bin").string());
    f.write("abc", 3);
  }
  EXPECT_EQ(entries(d), 0u);
  {
    AtomicFile f((d / "out.bin").string());
    f.write("abc", 3);
    f.write_at(0, "x", 1);
    f.commit();
  }
  std::ifstream in(d / "out.bin");
  std::string s;
  in >> s;
  EXPECT_EQ(s, "xbc");
  EXPECT_EQ(entries(d), 1u);
  fs::remove_all(d);
}

TEST(AtomicOutput, DirectoryCommitReplacesOnlyWhenAsked) {
  fs::path d = fresh_dir("ad");
  {
    AtomicDirectory a((d / "ck").string());
    std::ofstream((fs::path(a.temp_dir()) / "f").string()) << "1";
  }
  EXPECT_EQ(entries(d), 0u) << "an uncommitted folder is removed";
  {
    AtomicDirectory a((d / "ck").string());
    std::ofstream((fs::path(a.temp_dir()) / "f").string()) << "2";
    a.commit();
  }
  EXPECT_TRUE(fs::exists(d / "ck" / "f"));
  const std::string inputs[] = {(d / "in").string()};
  EXPECT_THROW(check_output_path((d / "ck").string(), inputs, false), Error);
  EXPECT_NO_THROW(check_output_path((d / "ck").string(), inputs, true));
  const std::string self[] = {(d / "ck").string()};
  EXPECT_THROW(check_output_path((d / "ck" / "f").string(), self, true), Error) << "inside an input";
  EXPECT_THROW(check_output_path(d.string(), self, true), Error) << "contains an input";
  fs::remove_all(d);
}

// The direct writer (O_DIRECT where /tmp takes it, buffered where not: the same bytes either
// way): pieces of every awkward size across its buffers and blocks, a write_at into bytes already
// on the file and more writes after it, then commit; and an uncommitted one leaves nothing.
TEST(AtomicOutput, DirectWritesAreTheBytesWritten) {
  fs::path d = fresh_dir("direct");
  std::string expect;
  uint32_t x = 12345;
  const auto bytes = [&](size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>((x = x * 1664525u + 1013904223u) >> 24);
    return s;
  };
  {
    AtomicFile f((d / "out.bin").string(), FileIo::Direct);
    for (size_t n : {size_t{1}, size_t{4095}, size_t{4097}, (size_t{4} << 20) + 17, size_t{3}, size_t{9} << 20}) {
      const std::string s = bytes(n);
      f.write(s.data(), s.size());
      expect += s;
    }
    EXPECT_EQ(f.bytes_written(), expect.size());
    f.write_at(5000, "patched", 7);
    expect.replace(5000, 7, "patched");
    const std::string tail = bytes(12'345);
    f.write(tail.data(), tail.size());
    expect += tail;
    f.commit();
  }
  std::ifstream in(d / "out.bin", std::ios::binary);
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got.size(), expect.size());
  EXPECT_TRUE(got == expect);
  {
    AtomicFile f((d / "gone.bin").string(), FileIo::Direct);
    const std::string s = bytes(5 << 20);
    f.write(s.data(), s.size());
  }
  EXPECT_FALSE(fs::exists(d / "gone.bin"));
  EXPECT_EQ(entries(d), 1u);
  fs::remove_all(d);
}
