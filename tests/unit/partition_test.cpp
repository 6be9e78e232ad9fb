// Work partitioning (src/pipeline/partition.h): every item owned once, the plan a pure function
// of the sizes, and the LPT bound: no rank above the ideal share plus the largest item.
#include "src/pipeline/partition.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "src/core/philox.h"

namespace deltakit {
namespace {

TEST(Partition, LargestFirstOntoTheLeastLoadedRank) {
  // sorted 10, 7, 6, 5, 4 on 2 ranks: 10 -> r0; 7 -> r1; 6 -> r1 (7 < 10); 5 -> r0 (10 < 13);
  // 4 -> r1 (13 < 15)
  std::vector<uint64_t> bytes = {5, 10, 4, 7, 6};
  auto owner = partition_by_bytes(bytes, 2);
  EXPECT_EQ(owner, (std::vector<int>{0, 0, 1, 1, 1}));
  EXPECT_EQ(items_of(owner, 0), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(items_of(owner, 1), (std::vector<size_t>{2, 3, 4}));
}

TEST(Partition, BalancedWithinTheLptBoundAndDeterministic) {
  TensorRng rng(3, "sizes");
  std::vector<uint64_t> bytes(300);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = 1 + rng.word(i) % 100000;
  bytes[17] = 2'000'000;  // one embedding-sized item
  const uint64_t total = std::accumulate(bytes.begin(), bytes.end(), uint64_t{0});
  const uint64_t largest = *std::max_element(bytes.begin(), bytes.end());
  for (int ranks : {1, 2, 3, 7, 64, 500}) {
    auto owner = partition_by_bytes(bytes, ranks);
    EXPECT_EQ(owner, partition_by_bytes(bytes, ranks));
    std::vector<uint64_t> load(ranks, 0);
    for (size_t i = 0; i < bytes.size(); ++i) {
      ASSERT_GE(owner[i], 0);
      ASSERT_LT(owner[i], ranks);
      load[owner[i]] += bytes[i];
    }
    const uint64_t worst = *std::max_element(load.begin(), load.end());
    EXPECT_LE(worst, std::max(largest, total / ranks + largest)) << ranks << " ranks";
  }
}

TEST(Partition, EmptyItemsStillSpreadOverRanks) {
  auto owner = partition_by_bytes(std::vector<uint64_t>(6, 0), 3);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(items_of(owner, r).size(), 2u);
}

}  // namespace
}  // namespace deltakit
