// A vector of floats whose resize() leaves new elements uninitialised: for buffers the next loop
// overwrites whole (a tensor's δ), where value-initialisation was a memset of the tensor's size —
// a tenth of a compress's time on these VMs.
#pragma once

#include <memory>
#include <vector>

namespace deltakit {

template <class T>
struct DefaultInitAllocator : std::allocator<T> {
  template <class U>
  struct rebind {
    using other = DefaultInitAllocator<U>;
  };
  using std::allocator<T>::allocator;
  template <class U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;  // default-initialised: no zeroing
  }
  template <class U, class... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using FloatBuffer = std::vector<float, DefaultInitAllocator<float>>;

}  // namespace deltakit
