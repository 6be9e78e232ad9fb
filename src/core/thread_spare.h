// A scratch vector a thread lends from one user to the next: taken (with its capacity and
// contents) when a user starts, given back when it ends. Tensor after tensor the same pages
// serve, so they are neither zero-filled nor faulted in again (a fresh allocation of a few
// hundred KB is a fresh mapping: one fault per 4 KiB, a large part of a streamed pass's time on
// these VMs). Each `Slot` is its own spare; a thread keeps the largest given back.
#pragma once

#include <utility>
#include <vector>

namespace deltakit {

template <class T, int Slot>
struct ThreadSpare {
  static std::vector<T> take() { return std::exchange(spare(), {}); }
  static void give(std::vector<T>&& v) {
    if (v.capacity() > spare().capacity()) spare() = std::move(v);
  }

 private:
  static std::vector<T>& spare() {
    thread_local std::vector<T> s;
    return s;
  }
};

}  // namespace deltakit
