// The distributed top-k (src/pipeline/global_cut.h) on real MPI ranks (run by CTest under
// mpirun -n 1, 2 and 3): every rank scores only its own tensors, and the cut must select exactly
// what a serial sort of all scores selects, ties broken toward (tensor, index), with every rank
// agreeing. Scores are drawn from few distinct values so that ties are common.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
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

// A tensor's value at i, handed beside its score (what a selection returns)
float value_at(size_t t, uint64_t i) { return static_cast<float>(t) * 1e6f + static_cast<float>(i); }

// The scores of a tensor in blocks of `block` (the last one shorter), with their values, counting the calls.
ScoreSource source(const std::vector<std::vector<float>>& s, std::atomic<size_t>& calls, size_t block = 97) {
  return [&s, &calls, block](size_t t, const ScoreVisitor& visit) {
    ++calls;
    std::vector<float> values;
    for (size_t b = 0; b < s[t].size(); b += block) {
      const size_t m = std::min(block, s[t].size() - b);
      values.resize(m);
      for (size_t i = 0; i < m; ++i) values[i] = value_at(t, b + i);
      visit.block(std::span<const float>(s[t]).subspan(b, m), values);
    }
  };
}

struct Way {
  bool candidates, with_sizes;
  uint64_t keep;
  size_t block;
};

// Every way of running the cut selects what the sort does: the one-pass kept entries (each
// tensor scored once, its selection handed back), and without them: scoring twice (no element
// count), keeping the first pass's top keys (each tensor then scored once), and a keep budget too
// small for most tensors (those are scored twice; the kept entries then fall back to scoring).
void check_scores(const std::vector<std::vector<float>>& scores, uint64_t k) {
  const size_t tensors = scores.size();
  std::vector<uint64_t> bytes;
  for (auto& s : scores) bytes.push_back(s.size() * 4);
  auto local = items_of(partition_by_bytes(bytes, world->size()), world->rank());
  auto want = reference(scores, k);
  const std::vector<uint64_t> sizes = sizes_of(scores);
  const std::vector<Way> ways = {{true, true, 256 << 20, 97},
                                 {true, false, 256 << 20, 100000},
                                 {true, true, 600, 97},
                                 {true, true, 300000, 5000},
                                 {false, false, 0, 97},
                                 {false, true, 256 << 20, 97},
                                 {false, true, 256 << 20, 100000},
                                 {false, true, 600, 97},
                                 {false, true, 300000, 5000}};
  for (const Way& w : ways)
    for (unsigned threads : {1u, 3u}) {  // tensors scored one after another, or side by side
      std::atomic<size_t> calls{0};
      GlobalCutOptions opt;
      opt.pool_sizes = w.with_sizes ? sizes : std::vector<uint64_t>{};
      opt.keep_bytes = w.keep, opt.threads = threads, opt.candidates = w.candidates;
      GlobalCut cut = find_global_cut(*world, tensors, local, k, source(scores, calls, w.block), opt);
      const std::string what = "k " + std::to_string(k) + " candidates " + std::to_string(w.candidates) + " sizes " +
                               std::to_string(w.with_sizes) + " keep " + std::to_string(w.keep) + " block " +
                               std::to_string(w.block) + " threads " + std::to_string(threads);
      ASSERT_EQ(cut.cuts.size(), tensors);
      ASSERT_EQ(cut.selected.size(), local.size());
      for (size_t t = 0; t < tensors; ++t)
        ASSERT_EQ(select_by_cut(scores[t], cut.cuts[t]), want[t]) << "tensor " << t << " " << what;
      size_t selected = 0;
      for (size_t j = 0; j < local.size(); ++j) {
        if (!cut.selected[j]) continue;
        ++selected;
        const size_t t = local[j];
        ASSERT_EQ(cut.selected[j]->positions, want[t]) << "tensor " << t << " " << what;
        std::vector<float> values;
        for (uint64_t i : want[t]) values.push_back(value_at(t, i));
        ASSERT_EQ(cut.selected[j]->values, values) << "tensor " << t << " " << what;
      }
      // the kept entries, where they suffice, hand back every selection from one scoring
      if (w.candidates && w.keep >= (uint64_t{256} << 20)) {
        EXPECT_EQ(selected, local.size()) << what;
        EXPECT_EQ(calls.load(), local.size()) << what;
      }
      if (!w.candidates) {
        EXPECT_EQ(selected, 0u) << what;
      }
      if (!w.candidates && !w.with_sizes && k > 0) {
        EXPECT_EQ(calls.load(), 2 * local.size()) << what;
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
  GlobalCutOptions opt;
  opt.pool_sizes = sizes_of(scores), opt.candidates = false;
  find_global_cut(*world, scores.size(), local, 300, source(scores, calls), opt);
  EXPECT_EQ(calls.load(), local.size());
}

TEST(GlobalCutMpi, FloorsAboveTheCutFallBackToScoringAgain) {
  // room for 150 kept entries a rank, a cut of 40, but half of every tensor ties at the top
  // score: a rank's ties cannot all be held, its floor rises past them and so above the cut;
  // every tensor is scored again and the cut is still exact
  auto scores = make_scores(6, 9, 2);
  std::vector<uint64_t> bytes;
  for (auto& s : scores) bytes.push_back(s.size() * 4);
  auto local = items_of(partition_by_bytes(bytes, world->size()), world->rank());
  const auto want = reference(scores, 40);
  std::atomic<size_t> calls{0};
  GlobalCutOptions opt;
  opt.keep_bytes = 150 * 16;
  GlobalCut cut = find_global_cut(*world, scores.size(), local, 40, source(scores, calls), opt);
  for (size_t t = 0; t < scores.size(); ++t) EXPECT_EQ(select_by_cut(scores[t], cut.cuts[t]), want[t]);
  for (const auto& s : cut.selected) EXPECT_FALSE(s.has_value());
  if (!local.empty()) {
    EXPECT_EQ(calls.load(), 3 * local.size());  // tried, then scored twice (no sizes given)
  }
}

// A source that gives only each tensor's top `give(t)` scores (all tied entries of the last one
// too), with complete_from above every score it leaves out; asked for blocks, every score.
ScoreSource some_source(const std::vector<std::vector<float>>& s, std::atomic<size_t>& calls,
                        std::function<uint64_t(size_t)> give) {
  return [&s, &calls, give](size_t t, const ScoreVisitor& visit) {
    ++calls;
    std::vector<float> values(s[t].size());
    for (size_t i = 0; i < values.size(); ++i) values[i] = value_at(t, i);
    if (!visit.some) {
      visit.block(s[t], values);
      return;
    }
    std::vector<uint32_t> keys;
    for (float x : s[t]) keys.push_back(score_key(x));
    std::vector<uint32_t> sorted = keys;
    std::sort(sorted.begin(), sorted.end(), std::greater<uint32_t>());
    const uint64_t g = std::min<uint64_t>(give(t), sorted.size());
    const uint32_t floor = g == 0 ? UINT32_MAX : sorted[g - 1];
    std::vector<uint64_t> at;
    std::vector<float> scores, vals;
    uint32_t left_out = 0;
    bool any_left = false;
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] >= floor) {
        at.push_back(i), scores.push_back(s[t][i]), vals.push_back(values[i]);
      } else {
        left_out = std::max(left_out, keys[i]), any_left = true;
      }
    // handed over in two calls, as a chunked source does
    const size_t half = at.size() / 2;
    const uint32_t from = any_left ? left_out + 1 : 0;
    visit.some(s[t].size(), std::span<const uint64_t>(at).first(half), std::span<const float>(scores).first(half),
               std::span<const float>(vals).first(half), from);
    visit.some(s[t].size(), std::span<const uint64_t>(at).subspan(half), std::span<const float>(scores).subspan(half),
               std::span<const float>(vals).subspan(half), from);
  };
}

TEST(GlobalCutMpi, SomeEntriesGivenAreEnoughWhenTheyReachTheCut) {
  auto scores = make_scores(8, 13, 1u << 12);  // some ties
  std::vector<uint64_t> bytes;
  for (auto& s : scores) bytes.push_back(s.size() * 4);
  auto local = items_of(partition_by_bytes(bytes, world->size()), world->rank());
  for (uint64_t k : {0ull, 1ull, 25ull, 150ull, 400ull}) {
    const auto want = reference(scores, k);
    // each tensor gives its top 40% (enough for any of these cuts), or tensor 3 only its top 2
    for (bool starved : {false, true}) {
      std::atomic<size_t> calls{0};
      const auto give = [&](size_t t) -> uint64_t { return starved && t == 3 ? 2 : scores[t].size() * 2 / 5; };
      GlobalCut cut = find_global_cut(*world, scores.size(), local, k, some_source(scores, calls, give), {});
      const std::string what = "k " + std::to_string(k) + " starved " + std::to_string(starved);
      for (size_t t = 0; t < scores.size(); ++t)
        ASSERT_EQ(select_by_cut(scores[t], cut.cuts[t]), want[t]) << "tensor " << t << " " << what;
      for (size_t j = 0; j < local.size(); ++j) {
        ASSERT_TRUE(cut.selected[j].has_value()) << what;
        ASSERT_EQ(cut.selected[j]->positions, want[local[j]]) << what;
        std::vector<float> values;
        for (uint64_t i : want[local[j]]) values.push_back(value_at(local[j], i));
        ASSERT_EQ(cut.selected[j]->values, values) << what;
      }
      // tensor 3, starved, is asked again for every score where its two cannot reach the cut
      const bool holds_3 = std::find(local.begin(), local.end(), size_t{3}) != local.end();
      const bool again = starved && holds_3 && want[3].size() >= 2 && k > 0;
      if (!starved || !holds_3) {
        EXPECT_EQ(calls.load(), local.size()) << what;
      }
      if (again) {
        EXPECT_EQ(calls.load(), local.size() + 1) << what;
      }
    }
  }
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
