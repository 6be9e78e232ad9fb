// The distributed top-k (src/pipeline/global_cut.h) on real MPI ranks (run by CTest under
// mpirun -n 1, 2 and 3): every rank scores only its own tensors, and the cut must select exactly
// what a serial sort of all scores selects, ties broken toward (tensor, index), with every rank
// agreeing. Scores are drawn from few distinct values so that ties are common.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <span>
#include <string>
#include <tuple>

#include "src/core/comm.h"
#include "src/core/philox.h"
#include "src/pipeline/global_cut.h"
#include "src/pipeline/partition.h"

namespace deltakit {
namespace {

Comm* world = nullptr;

std::vector<std::vector<float>> make_scores(size_t tensors, uint64_t seed, uint32_t distinct) {
  std::vector<std::vector<float>> s(tensors);
  for (size_t t = 0; t < tensors; ++t) {
    s[t].resize(100 + 37 * t);
    std::string name = "t";
    name += std::to_string(t);  // (not "t" + ...: a GCC 12 -Wrestrict false positive)
    TensorRng rng(seed, name);
    for (size_t i = 0; i < s[t].size(); ++i) s[t][i] = static_cast<float>(rng.word(i) % distinct) * 0.125f;
  }
  return s;
}

// The reference: a full sort of (score desc, tensor asc, index asc), first k kept.
std::vector<std::vector<uint64_t>> reference(const std::vector<std::vector<float>>& s, uint64_t k) {
  struct E {
    float v;
    size_t t;
    uint64_t i;
  };
  std::vector<E> all;
  for (size_t t = 0; t < s.size(); ++t)
    for (uint64_t i = 0; i < s[t].size(); ++i) all.push_back({s[t][i], t, i});
  std::stable_sort(all.begin(), all.end(), [](const E& a, const E& b) { return a.v > b.v; });
  std::vector<std::vector<uint64_t>> kept(s.size());
  for (uint64_t j = 0; j < std::min<uint64_t>(k, all.size()); ++j) kept[all[j].t].push_back(all[j].i);
  for (auto& v : kept) std::sort(v.begin(), v.end());
  return kept;
}

std::vector<uint64_t> sizes_of(const std::vector<std::vector<float>>& s) {
  std::vector<uint64_t> n;
  for (const auto& v : s) n.push_back(v.size());
  return n;
}

// The scores of a tensor in blocks of `block` (the last one shorter), counting the calls.
ScoreSource source(const std::vector<std::vector<float>>& s, std::atomic<size_t>& calls, size_t block = 97) {
  return [&s, &calls, block](size_t t, const ScoreVisit& visit) {
    ++calls;
    for (size_t b = 0; b < s[t].size(); b += block)
      visit(std::span<const float>(s[t]).subspan(b, std::min(block, s[t].size() - b)));
  };
}

// Every way of running the cut selects what the sort does: scoring twice (no element count),
// keeping the first pass's top keys (each tensor then scored once), and a keep budget too small
// for most tensors (those are scored twice).
void check_scores(const std::vector<std::vector<float>>& scores, uint64_t k) {
  const size_t tensors = scores.size();
  std::vector<uint64_t> bytes;
  for (auto& s : scores) bytes.push_back(s.size() * 4);
  auto local = items_of(partition_by_bytes(bytes, world->size()), world->rank());
  auto want = reference(scores, k);
  const std::vector<uint64_t> sizes = sizes_of(scores);
  // no sizes (scored twice); the first pass's keys kept, in blocks of 97 and of 100,000 (whole
  // tensors); a keep budget too small for most tensors, and one that runs out while a tensor streams
  const std::vector<std::tuple<bool, uint64_t, size_t>> ways = {
      {false, 0, 97}, {true, 256 << 20, 97}, {true, 256 << 20, 100000}, {true, 600, 97}, {true, 300000, 5000}};
  for (const auto& [with_sizes, keep, block] : ways)
    for (unsigned threads : {1u, 3u}) {  // tensors scored one after another, or side by side
      std::atomic<size_t> calls{0};
      auto cuts = find_global_cut(*world, tensors, local, k, source(scores, calls, block),
                                  with_sizes ? sizes : std::vector<uint64_t>{}, keep, threads);
      for (size_t t = 0; t < tensors; ++t)
        ASSERT_EQ(select_by_cut(scores[t], cuts[t]), want[t])
            << "tensor " << t << " k " << k << " sizes " << with_sizes << " keep " << keep << " block " << block
            << " threads " << threads;
      if (!with_sizes && k > 0) {
        EXPECT_EQ(calls.load(), 2 * local.size());
      }
    }
}

void check(size_t tensors, uint32_t distinct, uint64_t k) {
  check_scores(make_scores(tensors, 7 + distinct, distinct), k);
}

TEST(GlobalCutMpi, KeptKeysSpareTheSecondScoring) {
  auto scores = make_scores(6, 3, 1u << 20);
  std::vector<uint64_t> bytes;
  for (auto& s : scores) bytes.push_back(s.size() * 4);
  auto local = items_of(partition_by_bytes(bytes, world->size()), world->rank());
  std::atomic<size_t> calls{0};
  find_global_cut(*world, scores.size(), local, 300, source(scores, calls), sizes_of(scores));
  EXPECT_EQ(calls.load(), local.size());
}

TEST(GlobalCutMpi, OneTensorFarAboveTheOthers) {
  // 8 tensors of 50,000; one scores 1000x higher and holds the whole budget of 20,000: more than
  // the 4x share whose keys it kept, so it is scored again, and the cut is still the sort's
  auto scores = make_scores(8, 5, 1u << 20);
  for (size_t t = 0; t < scores.size(); ++t) {
    scores[t].resize(50000);
    TensorRng rng(11, "big" + std::to_string(t));
    for (size_t i = 0; i < scores[t].size(); ++i)
      scores[t][i] = static_cast<float>(rng.word(i) % 100000) * (t == 5 ? 1000.0f : 1.0f);
  }
  check_scores(scores, 20000);
}

TEST(GlobalCutMpi, MatchesASerialSortWithManyTies) {
  for (uint64_t k : {0ull, 1ull, 17ull, 1000ull, 5000ull, 100000ull}) check(12, 5, k);
}

TEST(GlobalCutMpi, MatchesASerialSortWithFewTies) {
  for (uint64_t k : {1ull, 333ull, 4000ull}) check(9, 1u << 20, k);
}

TEST(GlobalCutMpi, MoreRanksThanTensors) { check(2, 3, 50); }

}  // namespace
}  // namespace deltakit

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto comm = deltakit::make_world_comm(&argc, &argv);
  deltakit::world = comm.get();
  if (comm->rank() != 0) {  // one rank prints
    ::testing::TestEventListeners& l = ::testing::UnitTest::GetInstance()->listeners();
    delete l.Release(l.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  // every rank must pass
  uint64_t failed = rc != 0;
  comm->allreduce_sum({&failed, 1});
  return failed ? 1 : 0;
}
