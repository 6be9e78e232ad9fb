// The huge-page heap (src/core/allocator.h): the kernel's own account of the mapping
// (/proc/self/smaps) says whether memory the program allocates afterwards, from any thread,
// lies in a region marked for transparent huge pages.
#include "src/core/allocator.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

namespace {

struct Mapping {
  bool found = false;
  std::string flags;          // VmFlags
  uint64_t anon_huge_kb = 0;  // AnonHugePages
};

// the smaps entry of the mapping that holds p
Mapping mapping_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::ifstream in("/proc/self/smaps");
  Mapping m;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    uintptr_t lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      if (m.found) break;  // the next mapping: ours is complete
      inside = a >= lo && a < hi;
      m.found = inside;
      continue;
    }
    if (!inside) continue;
    if (line.rfind("VmFlags:", 0) == 0) m.flags = line.substr(8) + " ";
    if (line.rfind("AnonHugePages:", 0) == 0) m.anon_huge_kb = std::stoull(line.substr(14));
  }
  return m;
}

TEST(HugePageHeap, OffWhenAsked) {
  setenv("DELTAKIT_HUGE_PAGES", "0", 1);
  EXPECT_FALSE(deltakit::huge_page_heap(size_t{64} << 20));
  unsetenv("DELTAKIT_HUGE_PAGES");
}

// In a process of its own (the test binary's earlier tests made threads, whose malloc arenas a
// new thread could take instead of the heap): 0 when every block lies in huge-page memory, 77
// when there is no huge-page heap here, 1 with the reason on stderr otherwise.
int check_later_allocations() {
  deltakit::keep_freed_memory();
  if (!deltakit::huge_page_heap(size_t{512} << 20)) return 77;
  constexpr size_t kBytes = size_t{16} << 20;
  char* main_block = static_cast<char*>(std::malloc(kBytes));
  if (!main_block) return 1;
  std::memset(main_block, 1, kBytes);  // touched: faulted in
  char* thread_block = nullptr;
  std::thread([&] {
    thread_block = static_cast<char*>(std::malloc(size_t{1} << 20));  // a worker's allocation
    if (thread_block) std::memset(thread_block, 2, size_t{1} << 20);
  }).join();
  if (!thread_block) return 1;
  int rc = 0;
  for (const char* p : {main_block + kBytes / 2, main_block + kBytes - 1, thread_block}) {
    const Mapping m = mapping_of(p);
    if (!m.found || m.flags.find(" hg ") == std::string::npos) {
      std::cerr << static_cast<const void*>(p) << " (the 16 MiB block at " << static_cast<const void*>(main_block)
                << ", the thread's at " << static_cast<const void*>(thread_block) << ") is not in huge-page memory; "
                << "VmFlags:" << m.flags << "\n";
      rc = 1;
    }
  }
  // whether the kernel had 2 MiB pages free to give is its business; say what it did
  std::cerr << "AnonHugePages of the block's mapping: " << mapping_of(main_block + kBytes / 2).anon_huge_kb << " kB\n";
  std::free(thread_block);
  std::free(main_block);
  return rc;
}

TEST(HugePageHeap, LaterAllocationsFromEveryThreadLieInHugePageMemory) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");  // the child is a fresh run of this test alone
  // exit 77: no huge-page heap here (THP off, an address-space limit, strict overcommit or a
  // sanitizer), which is not a failure
  EXPECT_EXIT(
      std::exit(check_later_allocations()),
      [](int status) { return WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 77); }, "");
}

}  // namespace
