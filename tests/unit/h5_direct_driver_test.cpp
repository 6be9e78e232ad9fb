// The direct HDF5 driver (formats/h5_direct_driver.h) must leave the very bytes the POSIX driver
// writes for the same calls: chunks streamed around the page cache, metadata kept and laid over
// at close, a read in the middle (which ends direct writing) answered with what was written.
#include "formats/h5_direct_driver.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "formats/h5_support.h"
#include "src/core/atomic_output.h"

namespace deltakit {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<uint8_t> random_bytes(size_t n, std::mt19937& rng) {
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

// Groups of chunked datasets (chunks of 3 bytes to 700 KB, written with H5Dwrite_chunk, some read
// back at once with H5Dread_chunk), small contiguous datasets, attributes: enough objects that the
// metadata cache writes some out before the close.
void write_objects(hid_t file, bool read_back) {
  std::mt19937 rng(7);
  // no time stamps, so two runs a second apart make the same bytes
  H5Handle gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose), plain(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  H5Pset_obj_track_times(gcpl.get(), false);
  H5Pset_obj_track_times(plain.get(), false);
  for (int g = 0; g < 60; ++g) {
    std::string name = "g";
    name += std::to_string(g);
    H5Handle group(H5Gcreate2(file, name.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), H5Gclose);
    ASSERT_TRUE(group);
    const hsize_t chunk = g % 3 == 0 ? 3 : g % 3 == 1 ? 1500 : 700000;
    const hsize_t chunks = 1 + g % 4, dims = chunk * chunks;
    H5Handle dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl.get(), 1, &chunk);
    H5Pset_obj_track_times(dcpl.get(), false);
    H5Handle space(H5Screate_simple(1, &dims, nullptr), H5Sclose);
    H5Handle ds(H5Dcreate2(group.get(), "chunked", H5T_STD_U8LE, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                H5Dclose);
    ASSERT_TRUE(ds);
    for (hsize_t c = 0; c < chunks; ++c) {
      const hsize_t offset = c * chunk;
      const auto bytes = random_bytes(chunk, rng);
      ASSERT_GE(H5Dwrite_chunk(ds.get(), H5P_DEFAULT, 0, &offset, bytes.size(), bytes.data()), 0);
      if (read_back && g % 7 == 3) {
        std::vector<uint8_t> again(chunk);
        uint32_t filters = 0;
        ASSERT_GE(H5Dread_chunk(ds.get(), H5P_DEFAULT, &offset, &filters, again.data()), 0);
        ASSERT_EQ(again, bytes);
      }
    }
    const hsize_t small = 1 + g * 13;
    H5Handle sspace(H5Screate_simple(1, &small, nullptr), H5Sclose);
    H5Handle contig(H5Dcreate2(group.get(), "small", H5T_STD_U8LE, sspace.get(), H5P_DEFAULT, plain.get(), H5P_DEFAULT),
                    H5Dclose);
    const auto sbytes = random_bytes(small, rng);
    ASSERT_GE(H5Dwrite(contig.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, sbytes.data()), 0);
    h5_write_attr(group.get(), "index", static_cast<int64_t>(g));
    std::string label = "group ";  // appended: GCC 12 warns (-Wrestrict) on the one-line concatenation
    label += std::to_string(g);
    h5_write_attr(group.get(), "label", label);
  }
}

struct Props {
  H5Handle fcpl{H5Pcreate(H5P_FILE_CREATE), H5Pclose}, fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
  Props() {
    H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_obj_track_times(fcpl.get(), false);
    H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_V110);
  }
};

std::string posix_file(const std::string& path, bool read_back) {
  h5_setup();
  Props p;
  {
    H5Handle f(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, p.fcpl.get(), p.fapl.get()), H5Fclose);
    EXPECT_TRUE(f);
    write_objects(f.get(), read_back);
    EXPECT_TRUE(f.close());
  }
  return read_file(path);
}

std::string direct_file(const std::string& path, bool read_back, bool* stayed_direct) {
  h5_setup();
  Props p;
  AtomicFile out(path, FileIo::Direct);
  EXPECT_TRUE(h5_use_direct_driver(p.fapl.get(), out));
  {
    H5Handle f(H5Fcreate(out.temp_path().c_str(), H5F_ACC_TRUNC, p.fcpl.get(), p.fapl.get()), H5Fclose);
    EXPECT_TRUE(f);
    write_objects(f.get(), read_back);
    *stayed_direct = out.writes_direct();
    EXPECT_TRUE(f.close());
  }
  out.commit();
  return read_file(path);
}

TEST(H5DirectDriver, WritesThePosixDriversBytes) {
  const std::string dir = testing::TempDir() + "/h5_direct_" + std::to_string(getpid());
  std::filesystem::create_directories(dir);
  for (bool read_back : {false, true}) {
    SCOPED_TRACE(read_back ? "with chunks read back while writing" : "written only");
    const std::string posix = posix_file(dir + "/posix.h5", read_back);
    bool stayed_direct = false;
    const std::string direct = direct_file(dir + "/direct.h5", read_back, &stayed_direct);
    EXPECT_GT(posix.size(), size_t{10} << 20);
    EXPECT_EQ(direct.size(), posix.size());
    EXPECT_TRUE(direct == posix) << "the files differ";
    // streamed to the end unless a read needed the file (where O_DIRECT is refused: never direct)
    if (read_back) {
      EXPECT_FALSE(stayed_direct);
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace deltakit
