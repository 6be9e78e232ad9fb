// The huge-page heap (src/core/allocator.h): the kernel's own account of the mapping
// (/proc/self/smaps) says whether memory the program allocates afterwards, from any thread,
// lies in a region marked for transparent huge pages.
#include "src/core/allocator.h"

#include <gtest/gtest.h>

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

TEST(HugePageHeap, LaterAllocationsFromEveryThreadLieInHugePageMemory) {
  deltakit::keep_freed_memory();
  if (!deltakit::huge_page_heap(size_t{512} << 20))
    GTEST_SKIP() << "no huge-page heap here (THP off, an address-space limit, strict overcommit or a sanitizer)";
  constexpr size_t kBytes = size_t{16} << 20;
  char* main_block = static_cast<char*>(std::malloc(kBytes));
  ASSERT_NE(main_block, nullptr);
  std::memset(main_block, 1, kBytes);  // touched: faulted in
  char* thread_block = nullptr;
  std::thread([&] {
    thread_block = static_cast<char*>(std::malloc(size_t{1} << 20));  // a worker's allocation
    if (thread_block) std::memset(thread_block, 2, size_t{1} << 20);
  }).join();
  ASSERT_NE(thread_block, nullptr);
  for (const char* p : {main_block + kBytes / 2, main_block + kBytes - 1, thread_block}) {
    const Mapping m = mapping_of(p);
    ASSERT_TRUE(m.found) << "no mapping holds " << static_cast<const void*>(p);
    EXPECT_NE(m.flags.find(" hg "), std::string::npos)
        << static_cast<const void*>(p) << " (the 16 MiB block at " << static_cast<const void*>(main_block)
        << ", the thread's at " << static_cast<const void*>(thread_block) << ") VmFlags:" << m.flags;
  }
  // whether the kernel had 2 MiB pages free to give is its business; say what it did
  std::cout << "AnonHugePages of the block's mapping: " << mapping_of(main_block + kBytes / 2).anon_huge_kb << " kB\n";
  std::free(thread_block);
  std::free(main_block);
}

}  // namespace
