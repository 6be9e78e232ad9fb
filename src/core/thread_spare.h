// A scratch vector a thread lends from one user to the next: taken (with its capacity and
// contents) when a user starts, given back when it ends. Tensor after tensor the same pages
// serve, so they are neither zero-filled nor faulted in again (a fresh allocation of a few
// hundred KB is a fresh mapping: one fault per 4 KiB, a large part of a streamed pass's time on
// these VMs). Growing one leaves the new elements uninitialised (its user writes before it
// reads), so only the pages used are touched. Each `Slot` is its own spare; a thread keeps the
// largest given back.
#pragma once

#include <utility>
#include <vector>

#include "src/core/float_buffer.h"

namespace deltakit {

template <class T>
using SpareVector = std::vector<T, DefaultInitAllocator<T>>;

template <class T, int Slot>
struct ThreadSpare {
  static SpareVector<T> take() { return std::exchange(spare(), {}); }
  static void give(SpareVector<T>&& v) {
    if (v.capacity() > spare().capacity()) spare() = std::move(v);
  }

 private:
  static SpareVector<T>& spare() {
    thread_local SpareVector<T> s;
    return s;
  }
};

}  // namespace deltakit
