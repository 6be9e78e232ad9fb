// The safetensors header rules, one crafted byte image per rule, each asserting the exact error
// code (as the reference implementation's tests assert the exact SafeTensorError variant), and
// the writer's two modes read back through the validating reader.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "src/core/error.h"

using namespace deltakit;

namespace {
std::vector<uint8_t> image(const std::string& header, size_t data_len, uint64_t declared = UINT64_MAX) {
  uint64_t n = declared == UINT64_MAX ? header.size() : declared;
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char(n >> (8 * i));
  s += header;
  s.append(data_len, '\0');
  return std::vector<uint8_t>(s.begin(), s.end());
}

ErrorCode code_of(const std::vector<uint8_t>& bytes) {
  try {
    parse_safetensors_header(bytes, "x.safetensors");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("x.safetensors: "), std::string::npos) << e.what();
    return e.code();
  }
  ADD_FAILURE() << "accepted";
  return ErrorCode::Usage;
}

const std::string kOk =
    R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,3],"data_offsets":[8,14]}})";
}  // namespace

TEST(Safetensors, AcceptsAValidImage) {
  auto h = parse_safetensors_header(image(kOk, 14), "ok");
  ASSERT_EQ(h.entries.size(), 2u);
  EXPECT_EQ(h.entries[1].name, "b");
  EXPECT_EQ(h.entries[1].shape, (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(h.data_offset, 8 + kOk.size());
}

struct BadCase {
  const char* name;
  std::vector<uint8_t> bytes;
  ErrorCode code;
};

TEST(Safetensors, RejectsEachBrokenRuleWithItsOwnCode) {
  const std::vector<BadCase> cases = {
      {"EMPTY", {}, ErrorCode::FileTooSmall},
      {"SHORT_PREFIX", {1, 2, 3}, ErrorCode::FileTooSmall},
      {"HEADER_LEN_PAST_END", image(kOk, 14, kOk.size() + 100), ErrorCode::HeaderTooLarge},
      {"HEADER_LEN_2_POW_63", image(kOk, 14, 1ull << 63), ErrorCode::HeaderTooLarge},
      {"HEADER_LEN_MAX", image(kOk, 14, UINT64_MAX - 1), ErrorCode::HeaderTooLarge},
      {"NOT_JSON", image("{nope", 0), ErrorCode::HeaderNotJson},
      {"NOT_OBJECT_START", image("[1,2]", 0), ErrorCode::HeaderNotJson},
      {"INVALID_UTF8", image("{\"\xff\":1}", 0), ErrorCode::HeaderNotJson},
      {"ENTRY_NOT_OBJECT", image(R"({"a":5})", 0), ErrorCode::HeaderNotObject},
      {"MISSING_FIELD", image(R"({"a":{"dtype":"F32","shape":[1]}})", 0), ErrorCode::HeaderNotObject},
      {"DUPLICATE_NAME",
       image(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
           4),
       ErrorCode::DuplicateName},
      {"DUPLICATE_FIELD", image(R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4),
       ErrorCode::DuplicateName},
      {"UNKNOWN_DTYPE", image(R"({"a":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", 16),
       ErrorCode::UnknownDtype},
      {"NEGATIVE_SHAPE", image(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
       ErrorCode::InvalidShape},
      {"FLOAT_SHAPE", image(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4), ErrorCode::InvalidShape},
      {"SHAPE_OVERFLOW", image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,4]}})", 4),
       ErrorCode::Overflow},
      {"BYTES_OVERFLOW", image(R"({"a":{"dtype":"F64","shape":[4294967296,1073741824],"data_offsets":[0,4]}})", 4),
       ErrorCode::Overflow},
      {"OFFSETS_REVERSED", image(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4),
       ErrorCode::InvalidOffsets},
      {"OFFSETS_NOT_PAIR", image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
       ErrorCode::InvalidOffsets},
      {"SIZE_MISMATCH", image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), ErrorCode::SizeMismatch},
      {"GAP", image(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8), ErrorCode::OffsetsNotContiguous},
      {"OVERLAP",
       image(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           8),
       ErrorCode::OffsetsNotContiguous},
      {"TRUNCATED", image(kOk, 13), ErrorCode::DataLengthMismatch},
      {"APPENDED", image(kOk, 15), ErrorCode::DataLengthMismatch},
      {"METADATA_NOT_STRING", image(R"({"__metadata__":{"k":1}})", 0), ErrorCode::InvalidMetadata},
      {"METADATA_NOT_OBJECT", image(R"({"__metadata__":"x"})", 0), ErrorCode::InvalidMetadata},
  };
  for (const auto& c : cases) EXPECT_EQ(code_of(c.bytes), c.code) << c.name;
}

TEST(Safetensors, WriterUpFrontAndDeferredReadBack) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dk_st_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::vector<float> a = {1, 2, 3};
  std::vector<uint16_t> b = {7, 8};
  for (int mode = 0; mode < 3; ++mode) {  // up front, deferred that fits, deferred that outgrows
    std::string leaf = "t";
    leaf += std::to_string(mode);
    leaf += ".safetensors";
    std::string path = (dir / leaf).string();
    std::map<std::string, std::string> meta = {{"k", std::string(mode == 2 ? 5000 : 3, 'v')}};
    if (mode == 0) {
      SafetensorsWriter w(path, {{"a", DType::F32, {3}}, {"b", DType::BF16, {2}}}, meta);
      w.write(a.data(), 12);
      w.write(b.data(), 4);
      w.commit();
    } else {
      SafetensorsWriter w(path, mode == 1 ? 4096 : 64);
      w.begin_tensor({"a", DType::F32, {3}});
      w.write(a.data(), 12);
      w.begin_tensor({"b", DType::BF16, {2}});
      w.write(b.data(), 4);
      w.set_metadata(meta);
      w.commit();
    }
    SafetensorsFile f(path);
    ASSERT_EQ(f.entries().size(), 2u) << mode;
    EXPECT_EQ(f.header().data_offset % 8, 0u);
    EXPECT_EQ(f.metadata().at("k"), meta["k"]);
    auto va = f.view(*f.find("a"));
    EXPECT_EQ(std::memcmp(va.bytes.data(), a.data(), 12), 0);
    auto vb = f.view(*f.find("b"));
    EXPECT_EQ(std::memcmp(vb.bytes.data(), b.data(), 4), 0);
  }
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".deltakit-tmp"), std::string::npos) << "temporary left";
  fs::remove_all(dir);
}
