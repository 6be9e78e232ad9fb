// A fork-join loop over fixed-size blocks. Results must not depend on the thread count, so work
// is split by block index (not by thread) and each block writes only its own output slot.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace deltakit {

// 0 means "all hardware threads".
inline unsigned resolve_threads(unsigned threads) {
  if (threads) return threads;
  unsigned hw = std::thread::hardware_concurrency();
  return hw ? hw : 1;
}

// Calls fn(block_index, begin, end) for every block of `block` elements of [0, n).
template <class Fn>
void parallel_blocks(uint64_t n, uint64_t block, unsigned threads, Fn&& fn) {
  if (block == 0) block = 1;
  const uint64_t blocks = (n + block - 1) / block;
  threads = static_cast<unsigned>(std::min<uint64_t>(resolve_threads(threads), std::max<uint64_t>(blocks, 1)));
  auto body = [&](uint64_t b) { fn(b, b * block, std::min(n, (b + 1) * block)); };
  if (threads <= 1) {
    for (uint64_t b = 0; b < blocks; ++b) body(b);
    return;
  }
  std::atomic<uint64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto worker = [&] {
    for (uint64_t b; (b = next.fetch_add(1)) < blocks;) {
      try {
        body(b);
      } catch (...) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next = blocks;
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace deltakit
