// A compress journal's tensor record (src/pipeline/journal_part.h), read as the stitch and
// --resume read it. Each input runs twice: as given (the checksum turns nearly every mutation
// away) and with its checksum made to match, so the header's parser and the chunk reads behind
// the checksum see the mutations too.
#include "src/pipeline/journal_part.h"

#include <cstring>
#include <vector>

#include "src/core/fingerprint.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

void read_every_chunk(const std::string& path) {
  deltakit::JournalPartReader r(path);
  for (size_t p = 0; p < r.layouts().size(); ++p)
    for (size_t c = 0; c < r.chunk_count(p); ++c) (void)r.chunk(p, c);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  deltakit::fuzz::expect_clean([&] { read_every_chunk(deltakit::fuzz::as_file(data, size, "t0000000.part")); });
  if (size >= 32) {
    std::vector<uint8_t> fixed(data, data + size);
    const uint64_t sum = deltakit::fingerprint64({fixed.data() + 32, fixed.size() - 32});
    for (int b = 0; b < 8; ++b) fixed[24 + b] = static_cast<uint8_t>(sum >> (8 * b));
    deltakit::fuzz::expect_clean(
        [&] { read_every_chunk(deltakit::fuzz::as_file(fixed.data(), fixed.size(), "t0000001.part")); });
  }
  return 0;
}
