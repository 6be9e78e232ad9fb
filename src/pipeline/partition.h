// Which rank does which work item: largest first onto the least-loaded rank (LPT scheduling,
// within 4/3 of the best makespan). Deterministic: ties go to the lower index and lower rank,
// so every rank computes the same plan from the same sizes without talking.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace deltakit {

// owner[i] in [0, ranks) for every item of `bytes`.
std::vector<int> partition_by_bytes(const std::vector<uint64_t>& bytes, int ranks);

// The items owned by `rank`, in their original order.
std::vector<size_t> items_of(const std::vector<int>& owner, int rank);

}  // namespace deltakit
