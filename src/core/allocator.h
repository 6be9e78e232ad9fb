// Keep freed memory in the process. Every tensor needs buffers of about its own size; glibc
// serves those from fresh mmaps and returns them on free, so each tensor paid the kernel's page
// faults again (the dominant cost of a codec pass on these VMs). With large allocations from the
// heap and no trimming, the buffers of one tensor are reused by the next. Peak memory is
// unchanged (it is the largest tensor's working set either way).
//
// And fault the heap in 2 MiB pages where the kernel offers transparent huge pages on request:
// a first touch costs a fault per 4 KiB page otherwise (about 10 µs each on these VMs: a
// model-wide cherry cut's statistics, pool and selections are 40 k faults, 20% of its time).
#pragma once

#include <cstddef>

namespace deltakit {

void keep_freed_memory();

// Reserves `bytes` of address space at the top of the heap (untouched: no resident memory)
// and asks for huge pages there, with every thread allocating from that heap. Skipped under a
// limit on the address space, under strict overcommit, with THP off, under the sanitizers, or
// with DELTAKIT_HUGE_PAGES=0. Returns whether it was done.
bool huge_page_heap(size_t bytes);

}  // namespace deltakit
