// Outputs are complete or absent: an uncommitted file or folder leaves nothing behind, and the
// output-path checks refuse inputs and existing paths.
#include "src/core/atomic_output.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
