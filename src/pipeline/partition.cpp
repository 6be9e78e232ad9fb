#include "src/pipeline/partition.h"

#include <algorithm>
#include <numeric>
#include <queue>

namespace deltakit {

std::vector<int> partition_by_bytes(const std::vector<uint64_t>& bytes, int ranks) {
  std::vector<size_t> order(bytes.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return bytes[a] > bytes[b]; });
  // min-heap of (load, rank)
  using Slot = std::pair<uint64_t, int>;
  std::priority_queue<Slot, std::vector<Slot>, std::greater<>> heap;
  for (int r = 0; r < std::max(ranks, 1); ++r) heap.push({0, r});
  std::vector<int> owner(bytes.size(), 0);
  for (size_t i : order) {
    auto [load, r] = heap.top();
    heap.pop();
    owner[i] = r;
    // +1 so that empty items still spread over ranks instead of piling onto rank 0
    heap.push({load + bytes[i] + 1, r});
  }
  return owner;
}

std::vector<size_t> items_of(const std::vector<int>& owner, int rank) {
  std::vector<size_t> out;
  for (size_t i = 0; i < owner.size(); ++i)
    if (owner[i] == rank) out.push_back(i);
  return out;
}

}  // namespace deltakit
