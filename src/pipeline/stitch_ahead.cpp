#include "src/pipeline/stitch_ahead.h"

#include <chrono>
#include <utility>

namespace deltakit {

StitchAhead::StitchAhead(size_t count, std::function<bool(size_t)> ready, std::function<void(size_t)> place)
    : count_(count), ready_(std::move(ready)), place_(std::move(place)) {
  thread_ = std::thread([this] { run(); });
}

StitchAhead::~StitchAhead() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void StitchAhead::poke() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    poked_ = true;
  }
  wake_.notify_one();
}

void StitchAhead::run() {
  // another rank's record has no one to poke us: a poll this often costs a stat() per look
  constexpr auto kPoll = std::chrono::milliseconds(4);
  try {
    while (next_ < count_) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stop_) return;
        poked_ = false;
      }
      if (ready_(next_)) {
        place_(next_);
        ++next_;
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait_for(lock, kPoll, [this] { return stop_ || poked_; });
    }
  } catch (...) {
    error_ = std::current_exception();
  }
}

size_t StitchAhead::finish() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  return next_;
}

}  // namespace deltakit
