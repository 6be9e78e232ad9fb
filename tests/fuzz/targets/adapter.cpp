// An HDF5 adapter (formats/adapter_h5.h) opened and every tensor decoded onto a zero base through
// the codec interface, as apply does: attributes, datasets, positions, codes and factors all
// come from the fuzzer.
#include <vector>

#include "formats/adapter_h5.h"
#include "formats/h5_support.h"
#include "src/codec/codec.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = [] {
    deltakit::h5_setup();
    return true;
  }();
  (void)ready;
  const std::string path = deltakit::fuzz::as_file(data, size, "adapter.h5");
  deltakit::fuzz::expect_clean([&] {
    deltakit::AdapterReader ad(path);
    (void)ad.side_files();
    for (const auto& name : ad.names()) {
      deltakit::TensorView base;
      base.name = name;
      base.dtype = ad.dtype(name);
      base.shape = ad.shape(name);
      // a real base may be large; a fuzzed one that large would only make the fuzzer slow
      constexpr uint64_t kMax = uint64_t{1} << 22;
      uint64_t numel = 1;
      bool large = false;
      for (uint64_t d : base.shape) {
        if (d && numel > kMax / d) large = true;
        numel = large ? kMax + 1 : numel * d;
      }
      if (numel > kMax) continue;
      std::vector<uint8_t> zeros(numel * deltakit::dtype_size(base.dtype)), out(zeros.size());
      base.bytes = zeros;
      const deltakit::AdapterTensorSource src = ad.source(name);
      deltakit::decode_add_stored({ad.attrs(name), src, ad.where(name)}, base, 1.0f, out);
      (void)ad.stored_bytes(name);
    }
  });
  return 0;
}
