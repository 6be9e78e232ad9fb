// A compress journal's tensor record (src/pipeline/journal_part.h): what goes in comes out —
// attributes with their number kinds, chunks byte for byte — and a record torn, truncated or
// altered anywhere reads as not whole, so --resume redoes it instead of stitching it.
#include "src/pipeline/journal_part.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "src/core/error.h"
#include "src/pipeline/record_queue.h"

namespace deltakit {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path dir = fs::temp_directory_path() / ("deltakit_journal_part_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(dir); }
  ~TempDir() { fs::remove_all(dir); }
};

std::vector<FilteredPart> sample_parts() {
  FilteredPart signs{"bitdelta.signs", PartKind::U8, {3, 8}, {2, 8}, "", 1, {}};
  signs.chunks = {{1, 2, 3, 4, 5}, {9, 8, 7}};
  FilteredPart scale{"bitdelta.scale", PartKind::U16, {1}, {1}, "bfloat16", 3, {}};
  scale.chunks = {{0x80, 0x3f, 0, 0}};
  FilteredPart empty{"dare.values", PartKind::F32, {4}, {4}, "", 1, {}};  // never written: no chunks
  return {signs, scale, empty};
}

JournalPart sample_tensor() {
  JournalPart t;
  t.name = "model.layers.0.mlp.up_proj.weight";
  t.attrs = nlohmann::json::object();
  t.attrs["codec"] = "bitdelta";
  t.attrs["shape"] = std::vector<uint64_t>{3, 64};
  t.attrs["rel_error"] = 0.25;
  t.attrs["offset"] = int64_t{7};  // signed though positive: an I64 attribute, not U64
  t.attrs["negative"] = int64_t{-3};
  t.attrs["not_a_number"] = std::numeric_limits<double>::quiet_NaN();
  t.attrs["flags"] = nlohmann::json::array({true, nullptr, "x"});
  t.report = R"({"rel_error":0.25})";
  t.base_fingerprint = 0xfedcba9876543210ull;
  return t;
}

TEST(JournalPart, WhatIsWrittenReadsBack) {
  TempDir tmp;
  const std::string path = (tmp.dir / "t0000000.part").string();
  const auto parts = sample_parts();
  const JournalPart t = sample_tensor();
  write_journal_part(path, t, parts);
  ASSERT_TRUE(journal_part_whole(path));
  JournalPartReader r(path);
  EXPECT_EQ(r.tensor().name, t.name);
  EXPECT_EQ(r.tensor().report, t.report);
  EXPECT_EQ(r.tensor().base_fingerprint, t.base_fingerprint);
  const auto& a = r.tensor().attrs;
  EXPECT_EQ(a["codec"], "bitdelta");
  EXPECT_TRUE(a["shape"][0].is_number_unsigned());
  EXPECT_TRUE(a["offset"].is_number_integer() && !a["offset"].is_number_unsigned());
  EXPECT_EQ(a["offset"].get<int64_t>(), 7);
  EXPECT_EQ(a["negative"].get<int64_t>(), -3);
  EXPECT_TRUE(a["rel_error"].is_number_float());
  EXPECT_EQ(a["rel_error"].get<double>(), 0.25);
  EXPECT_TRUE(std::isnan(a["not_a_number"].get<double>()));
  EXPECT_EQ(a["flags"], t.attrs["flags"]);
  ASSERT_EQ(r.layouts().size(), parts.size());
  for (size_t p = 0; p < parts.size(); ++p) {
    EXPECT_EQ(r.layouts()[p].name, parts[p].name);
    EXPECT_EQ(r.layouts()[p].kind, parts[p].kind);
    EXPECT_EQ(r.layouts()[p].dims, parts[p].dims);
    EXPECT_EQ(r.layouts()[p].chunk, parts[p].chunk);
    EXPECT_EQ(r.layouts()[p].encoding, parts[p].encoding);
    EXPECT_EQ(r.layouts()[p].zstd_level, parts[p].zstd_level);
    ASSERT_EQ(r.chunk_count(p), parts[p].chunks.size());
    for (size_t c = 0; c < parts[p].chunks.size(); ++c) {
      const auto got = r.chunk(p, c);
      EXPECT_EQ(std::vector<uint8_t>(got.begin(), got.end()), parts[p].chunks[c]) << p << " " << c;
    }
  }
  // no temporary left beside it
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.dir), fs::directory_iterator{}), 1);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
}

TEST(JournalPart, EveryAlteredByteOrCutIsNotWhole) {
  TempDir tmp;
  const std::string path = (tmp.dir / "t0000001.part").string();
  write_journal_part(path, sample_tensor(), sample_parts());
  const std::string good = read_all(path);
  const std::string bad = (tmp.dir / "bad.part").string();
  auto open_files = [] { return std::distance(fs::directory_iterator("/proc/self/fd"), fs::directory_iterator{}); };
  const auto files_before = open_files();
  for (size_t i = 0; i < good.size(); ++i) {
    std::string b = good;
    b[i] = static_cast<char>(b[i] ^ 0x20);
    write_all(bad, b);
    EXPECT_FALSE(journal_part_whole(bad)) << "byte " << i;
  }
  for (size_t n : {size_t{0}, size_t{8}, size_t{31}, size_t{32}, good.size() / 2, good.size() - 1}) {
    write_all(bad, good.substr(0, n));
    EXPECT_FALSE(journal_part_whole(bad)) << "cut to " << n;
  }
  write_all(bad, good + "x");
  EXPECT_FALSE(journal_part_whole(bad));
  EXPECT_EQ(open_files(), files_before) << "a refused record left its file open";  // the fuzzer's first find
  // the reader names the file and says why
  write_all(bad, std::string(good.size(), '\0'));
  try {
    JournalPartReader r(bad);
    FAIL() << "a zeroed record was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.part"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("journal part is damaged"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace deltakit

namespace deltakit {
namespace {

// Records written behind the encoder (src/pipeline/record_queue.h): each lands whole, in any
// number, past the cap; a write that fails comes back to the caller, at drain and at every push
// after it.
TEST(RecordQueue, RecordsLandWholeAndAFailureComesBack) {
  TempDir t;
  const auto record = std::make_shared<const HeldRecord>(HeldRecord{sample_tensor(), sample_parts()});
  // (appended: GCC 12 warns, -Wrestrict, on a one-line "t" + number concatenation)
  const auto path_of = [&](int i) {
    std::string leaf = "t";
    leaf += std::to_string(i);
    leaf += ".part";
    return (t.dir / leaf).string();
  };
  {
    RecordQueue queue(/*cap_bytes=*/8);  // below one record: each waits for the one before
    for (int i = 0; i < 20; ++i) queue.push(path_of(i), record);
    queue.drain();
  }
  for (int i = 0; i < 20; ++i) {
    const std::string path = path_of(i);
    ASSERT_TRUE(journal_part_whole(path)) << path;
    JournalPartReader r(path);
    EXPECT_EQ(r.tensor().name, record->tensor.name);
  }
  RecordQueue queue;
  queue.push((t.dir / "no such folder" / "t.part").string(), record);
  EXPECT_THROW(queue.drain(), Error);
  EXPECT_THROW(queue.push((t.dir / "later.part").string(), record), Error);
  EXPECT_FALSE(fs::exists(t.dir / "later.part"));
}

}  // namespace
}  // namespace deltakit
