// Wall-clock timing shared by the benchmarks: the best of a few repetitions.
#pragma once

#include <algorithm>
#include <chrono>

namespace deltakit::bench {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F>
double best_of(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

}  // namespace deltakit::bench
