#include "src/core/allocator.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace deltakit {

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);  // M_MMAP_THRESHOLD caps at 32 MiB; tensors are larger
  mallopt(M_TRIM_THRESHOLD, -1);
}

namespace {
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

// the first bytes of a small system file ("" if it cannot be read); not read_whole_file: /proc
// and /sys files report a size of 0, which it reads exactly
std::string first_line(const char* path) {
  char buf[128] = {};
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}
}  // namespace

bool huge_page_heap(size_t bytes) {
  if (kSanitized) return false;  // the sanitizer's allocator is not glibc's
  if (const char* e = std::getenv("DELTAKIT_HUGE_PAGES"); e && std::strcmp(e, "0") == 0) return false;
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur != RLIM_INFINITY) return false;  // reserving would count
  if (first_line("/proc/sys/vm/overcommit_memory").starts_with("2")) return false;   // it would be committed
  const std::string thp = first_line("/sys/kernel/mm/transparent_hugepage/enabled");
  if (thp.empty() || thp.find("[never]") != std::string::npos) return false;
  // one arena: worker threads' own arenas are mmapped heaps this reservation does not cover
  mallopt(M_ARENA_MAX, 1);
  void* p = std::malloc(bytes);  // from the heap's top (no mmap: keep_freed_memory), untouched
  if (!p) return false;
  // the whole pages of the block: the kernel backs each 2 MiB-aligned stretch inside with a huge page
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
  const bool ok = e > b && madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE) == 0;
  std::free(p);  // back to the top chunk, which is never trimmed: later allocations carve it
  return ok;
}

}  // namespace deltakit
