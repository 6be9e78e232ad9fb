// Tensor-sized scratch memory that only grows: 2 MiB-aligned, offered to the kernel for
// transparent huge pages, never zero-filled. The first touch of fresh memory costs a page fault
// per 4 KiB page (a few µs each on these VMs: merging a 0.5 GB model spent 38% of its time
// faulting in its five tensor-sized buffers); with huge pages it is one fault per 2 MiB.
#pragma once

#include <sys/mman.h>

#include <cstdlib>
#include <memory>
#include <new>
#include <span>

namespace deltakit {

template <class T>
class BigBuffer {
 public:
  // The first n elements; their values are unspecified after a growth (callers overwrite them).
  std::span<T> first(size_t n) {
    if (n > capacity_) grow(n);
    return {data_.get(), n};
  }

 private:
  static constexpr size_t kHuge = size_t{2} << 20;
  struct Free {
    void operator()(T* p) const { std::free(p); }
  };

  void grow(size_t n) {
    const size_t bytes = (n * sizeof(T) + kHuge - 1) / kHuge * kHuge;
    data_.reset();  // the old contents are not kept: free first, so the peak is one buffer
    T* p = static_cast<T*>(std::aligned_alloc(kHuge, bytes));
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    ::madvise(p, bytes, MADV_HUGEPAGE);  // a hint: without THP this changes nothing
#endif
    data_.reset(p);
    capacity_ = bytes / sizeof(T);
  }

  std::unique_ptr<T, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace deltakit
