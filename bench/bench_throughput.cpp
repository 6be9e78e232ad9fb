// Throughput of `diff` and raw `compress` in GB/s of input (base + fine-tune tensor bytes),
// beside a memcpy of the same bytes measured in the same run, inputs in page cache, one core.
//
//   bench_throughput [--size medium] [--dtype bf16] [--reps 3] [--workdir /tmp]
//
// Prints one line per measurement and the ratio to memcpy; the best of `reps` runs counts.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "bench/bench_timing.h"
#include "src/fixture/llama_fixture.h"
#include "src/pipeline/compress.h"
#include "src/pipeline/diff.h"

using namespace deltakit;
using deltakit::bench::best_of;
using deltakit::bench::now;
namespace fs = std::filesystem;

namespace {

long peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024;
}
}  // namespace

int main(int argc, char** argv) {
  std::string size = "medium", dtype = "bf16", workdir = fs::temp_directory_path().string();
  int reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--size") size = argv[i + 1];
    else if (k == "--dtype") dtype = argv[i + 1];
    else if (k == "--reps") reps = std::stoi(argv[i + 1]);
    else if (k == "--workdir") workdir = argv[i + 1];
  }
  FixtureOptions o = fixture_preset(size);
  o.dtype = dtype == "f32" ? DType::F32 : dtype == "f16" ? DType::F16 : DType::BF16;
  fs::path dir = fs::path(workdir) / "deltakit-bench";
  dir += std::to_string(::getpid());
  fs::create_directories(dir);
  const std::string base = (dir / "base").string(), ft = (dir / "ft").string();
  std::printf("fixture: %s %s -> %s\n", size.c_str(), dtype.c_str(), dir.c_str());
  write_llama_fixture(o, base, ft, false);

  Checkpoint b(base), f(ft);
  const uint64_t bytes = b.total_tensor_bytes() + f.total_tensor_bytes();
  std::vector<uint8_t> dst(bytes);
  std::memset(dst.data(), 1, dst.size());  // fault the pages in before timing
  auto copy_all = [&] {
    uint64_t off = 0;
    for (const Checkpoint* c : {&b, &f})
      for (const auto& n : c->names()) {
        auto v = c->view(n);
        std::memcpy(dst.data() + off, v.bytes.data(), v.bytes.size());
        off += v.bytes.size();
      }
  };
  copy_all();  // page cache warm
  double t_memcpy = best_of(reps, copy_all);
  double gb = bytes / 1e9;
  auto line = [&](const char* what, double t) {
    std::printf("%-22s %8.3f s  %7.2f GB/s  %5.2fx memcpy bandwidth\n", what, t, gb / t, t_memcpy / t);
  };
  line("memcpy (baseline)", t_memcpy);
  // the same copy through a fresh mapping per run, as every command pays: page-table set-up
  line("memcpy, fresh mmap", best_of(reps, [&] {
         Checkpoint b2(base), f2(ft);
         uint64_t off = 0;
         for (const Checkpoint* c : {&b2, &f2})
           for (const auto& n : c->names()) {
             auto v = c->acquire(n);
             std::memcpy(dst.data() + off, v.bytes.data(), v.bytes.size());
             c->release(n);
             off += v.bytes.size();
           }
       }));
  line("diff", best_of(reps, [&] { run_diff(base, ft); }));
  int k = 0;
  line("compress raw", best_of(reps, [&] {
         CompressOptions c;
         c.base = base, c.finetuned = ft, c.out = (dir / (std::to_string(k++) + ".adapter")).string();
         run_compress(c);
         fs::remove(c.out);
       }));
  std::printf("input %.3f GB (%llu params per model), peak RSS %ld MB (incl. the %.0f MB memcpy buffer)\n", gb,
              static_cast<unsigned long long>(b.total_tensor_bytes() / dtype_size(o.dtype)), peak_rss_mb(), bytes / 1e6);
  fs::remove_all(dir);
  return 0;
}
