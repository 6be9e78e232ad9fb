// Progress of a long job on rank 0's stderr: items done / total, bytes, GB/s and ETA, redrawn in
// place on a terminal and as a plain line every 10 s (or 10% of the items, none in the first 2 s)
// otherwise; with
// log_json, one JSON object per line per change for machines. A thread polls a function (the
// journal's listing) so that the work loop never waits for the display, and no MPI call is made
// off the main thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace deltakit {

struct ProgressOptions {
  bool quiet = false;
  std::string log_json;  // file to append JSON lines to ("" none)
};

struct ProgressCount {
  uint64_t items = 0, bytes = 0;
};

class ProgressReporter {
 public:
  // Inactive (no thread, no output) unless `active` (rank 0).
  ProgressReporter(const ProgressOptions& opt, std::string what, std::string unit, uint64_t total_items,
                   uint64_t total_bytes, std::function<ProgressCount()> poll, bool active);
  ~ProgressReporter();
  // Last report ("done") and stop.
  void finish();

 private:
  void loop();
  void stop_thread();
  void report(bool final);
  ProgressOptions opt_;
  std::string what_, unit_;
  uint64_t total_items_, total_bytes_;
  std::function<ProgressCount()> poll_;
  bool tty_ = false;
  std::FILE* log_ = nullptr;
  double start_ = 0, last_line_ = 0;
  uint64_t last_items_ = UINT64_MAX, last_line_items_ = 0;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace deltakit
