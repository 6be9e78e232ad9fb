// filter_part (formats/h5_chunks.h) runs the adapter's filter pipeline outside HDF5: its chunks
// must be the very bytes HDF5's own pipeline stores for the same dataset, and a file holding
// them must read back as the part.
#include "formats/h5_chunks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "formats/adapter_h5.h"
#include "formats/h5_support.h"

namespace deltakit {
namespace {

Part random_part(const std::string& name, PartKind kind, std::vector<uint64_t> dims, uint32_t seed) {
  Part p{name, kind, std::move(dims), {}, ""};
  p.bytes.resize(p.count() * part_kind_size(kind));
  std::mt19937 rng(seed);
  // runs and noise, so zstd has something to find and something it cannot
  for (size_t i = 0; i < p.bytes.size(); ++i) p.bytes[i] = (i / 7) % 3 ? static_cast<uint8_t>(rng() & 15) : 0;
  return p;
}

// The chunks HDF5's own filter pipeline stores for p (H5Dwrite through shuffle, zstd, fletcher32).
std::vector<std::vector<uint8_t>> chunks_hdf5_writes(const Part& p, int level, const std::string& path) {
  h5_setup();
  const FilteredPart shape = filter_part(p, level, path);
  H5Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  std::vector<hsize_t> dims(shape.dims.begin(), shape.dims.end()), chunk(shape.chunk.begin(), shape.chunk.end());
  H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  unsigned lv = static_cast<unsigned>(level);
  EXPECT_GE(H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()), 0);
  if (part_kind_size(p.kind) > 1) {
    EXPECT_GE(H5Pset_shuffle(dcpl.get()), 0);
  }
  EXPECT_GE(H5Pset_filter(dcpl.get(), kZstdFilterId, H5Z_FLAG_MANDATORY, 1, &lv), 0);
  EXPECT_GE(H5Pset_fletcher32(dcpl.get()), 0);
  H5Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  H5Handle ds(H5Dcreate2(f.get(), "d", h5_part_type(p.kind), space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
              H5Dclose);
  EXPECT_GE(H5Dwrite(ds.get(), h5_part_type(p.kind), H5S_ALL, H5S_ALL, H5P_DEFAULT, p.bytes.data()), 0);
  hsize_t n = 0;
  EXPECT_GE(H5Dget_num_chunks(ds.get(), space.get(), &n), 0);
  std::vector<std::vector<uint8_t>> out;
  for (hsize_t c = 0; c < n; ++c) {
    hsize_t offset[H5S_MAX_RANK] = {};
    unsigned mask = 0;
    haddr_t addr = 0;
    hsize_t size = 0;
    EXPECT_GE(H5Dget_chunk_info(ds.get(), space.get(), c, offset, &mask, &addr, &size), 0);
    EXPECT_EQ(offset[0], c * chunk[0]);
    std::vector<uint8_t> bytes(size);
    uint32_t filters = 0;
    EXPECT_GE(H5Dread_chunk(ds.get(), H5P_DEFAULT, offset, &filters, bytes.data()), 0);
    EXPECT_EQ(filters, 0u);
    out.push_back(std::move(bytes));
  }
  return out;
}

TEST(H5Chunks, FilterPartIsHdf5sOwnPipeline) {
  const std::string dir = testing::TempDir() + "/h5_chunks_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  const struct {
    PartKind kind;
    std::vector<uint64_t> dims;
  } cases[] = {
      {PartKind::U8, {1}},                   // one byte: Fletcher's odd tail
      {PartKind::U8, {3 * (1u << 20) + 5}},  // no shuffle; an edge chunk of 5 bytes
      {PartKind::U16, {630050}},             // shuffled, one whole chunk and an edge
      {PartKind::U16, {1}},                  // one element: the shuffle leaves it
      {PartKind::F32, {1000, 300}},          // 2-D: rows per chunk, an edge of rows
      {PartKind::U32, {17, 3}},
      {PartKind::U64, {200000}},
      {PartKind::F32, {}},  // a scalar part, stored as {1}
  };
  uint32_t seed = 1;
  for (const auto& c : cases)
    for (int level : {1, 3}) {
      const Part p = random_part("x", c.kind, c.dims, seed++);
      SCOPED_TRACE(std::string(part_kind_name(c.kind)) + " of " + std::to_string(p.count()) + ", level " +
                   std::to_string(level));
      const FilteredPart mine = filter_part(p, level, "test");
      EXPECT_EQ(mine.chunks, chunks_hdf5_writes(p, level, dir + "/ref.h5"));
    }
  std::filesystem::remove_all(dir);
}

// Each stored chunk unfiltered gives back its rows of the part (the edge chunk cut to them); a
// flipped byte anywhere in it is refused; the checksum byte-reversed (HDF5 1.6's files) is not.
TEST(H5Chunks, UnfilterChunkIsTheWayBack) {
  const struct {
    PartKind kind;
    std::vector<uint64_t> dims;
  } cases[] = {{PartKind::U8, {1}},       {PartKind::U8, {3 * (1u << 20) + 5}},
               {PartKind::U16, {630050}}, {PartKind::F32, {1000, 300}},
               {PartKind::U32, {17, 3}},  {PartKind::U64, {200000}}};
  uint32_t seed = 100;
  for (const auto& c : cases) {
    const Part p = random_part("x", c.kind, c.dims, seed++);
    SCOPED_TRACE(std::string(part_kind_name(c.kind)) + " of " + std::to_string(p.count()));
    const FilteredPart f = filter_part(p, 1, "test");
    uint64_t chunk_bytes = part_kind_size(p.kind);
    for (uint64_t d : f.chunk) chunk_bytes *= d;
    std::vector<uint8_t> back(p.bytes.size(), 0xee);
    for (size_t i = 0; i < f.chunks.size(); ++i) {
      const uint64_t at = i * chunk_bytes, keep = std::min<uint64_t>(chunk_bytes, back.size() - at);
      ASSERT_TRUE(unfilter_chunk(f.chunks[i].data(), f.chunks[i].size(), chunk_bytes, part_kind_size(p.kind),
                                 back.data() + at, keep));
    }
    EXPECT_EQ(back, p.bytes);
    std::vector<uint8_t> damaged = f.chunks[0];
    for (size_t at : {size_t{0}, damaged.size() / 2, damaged.size() - 1}) {
      damaged[at] ^= 0x10;
      EXPECT_FALSE(unfilter_chunk(damaged.data(), damaged.size(), chunk_bytes, part_kind_size(p.kind), back.data(),
                                  std::min<uint64_t>(chunk_bytes, back.size())))
          << at;
      damaged[at] ^= 0x10;
    }
    std::reverse(damaged.end() - 4, damaged.end());
    EXPECT_TRUE(unfilter_chunk(damaged.data(), damaged.size(), chunk_bytes, part_kind_size(p.kind), back.data(),
                               std::min<uint64_t>(chunk_bytes, back.size())));
    EXPECT_FALSE(unfilter_chunk(damaged.data(), damaged.size(), chunk_bytes + 1, part_kind_size(p.kind), back.data(),
                                std::min<uint64_t>(chunk_bytes, back.size())));  // not its size
  }
}

}  // namespace

// HDF5's own Fletcher32 (exported by libhdf5, declared in its private headers).
extern "C" uint32_t H5_checksum_fletcher32(const void* data, size_t len);

namespace {

// Every length from 0 to 2,000 bytes (odd ones, runs of 360 words and their remainders) and a
// few long ones, over bytes that push the sums to their largest (0xff) and random ones.
TEST(H5Chunks, Fletcher32IsHdf5s) {
  std::mt19937 rng(7);
  std::vector<uint8_t> ones(100000, 0xff), noise(100000);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  for (const auto* buf : {&ones, &noise}) {
    for (size_t n = 0; n <= 2000; ++n)
      ASSERT_EQ(h5_fletcher32(buf->data(), n), H5_checksum_fletcher32(buf->data(), n)) << n;
    for (size_t n : {size_t{65535}, size_t{65536}, size_t{99999}, size_t{100000}})
      ASSERT_EQ(h5_fletcher32(buf->data(), n), H5_checksum_fletcher32(buf->data(), n)) << n;
  }
}

}  // namespace
}  // namespace deltakit
