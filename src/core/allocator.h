// Keep freed memory in the process. Every tensor needs buffers of about its own size; glibc
// serves those from fresh mmaps and returns them on free, so each tensor paid the kernel's page
// faults again (the dominant cost of a codec pass on these VMs). With large allocations from the
// heap and no trimming, the buffers of one tensor are reused by the next. Peak memory is
// unchanged (it is the largest tensor's working set either way).
#pragma once

#include <malloc.h>

namespace deltakit {

inline void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);  // M_MMAP_THRESHOLD caps at 32 MiB; tensors are larger
  mallopt(M_TRIM_THRESHOLD, -1);
}

}  // namespace deltakit
