#include "src/pipeline/record_queue.h"

namespace deltakit {

RecordQueue::RecordQueue(uint64_t cap_bytes) : cap_(cap_bytes) {
  thread_ = std::thread([this] { run(); });
}

RecordQueue::~RecordQueue() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void RecordQueue::rethrow_failure() {
  if (error_) std::rethrow_exception(error_);  // kept: every later push and drain fails alike
}

void RecordQueue::push(std::string path, std::shared_ptr<const HeldRecord> record) {
  const uint64_t bytes = record->bytes();
  std::unique_lock<std::mutex> lock(mutex_);
  // one record larger than the cap still goes, alone
  changed_.wait(lock, [&] { return error_ || queued_bytes_ == 0 || queued_bytes_ + bytes <= cap_; });
  rethrow_failure();
  queued_bytes_ += bytes;
  queue_.emplace_back(std::move(path), std::move(record));
  changed_.notify_all();
}

void RecordQueue::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return error_ || (queue_.empty() && !busy_); });
  rethrow_failure();
}

void RecordQueue::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stop_ || (!queue_.empty() && !error_); });
    if (stop_) return;
    auto [path, record] = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    std::exception_ptr failed;
    try {
      write_journal_part(path, record->tensor, record->parts);
    } catch (...) {
      failed = std::current_exception();
    }
    const uint64_t bytes = record->bytes();
    record.reset();
    lock.lock();
    busy_ = false;
    queued_bytes_ -= bytes;
    if (failed && !error_) error_ = failed;
    changed_.notify_all();
  }
}

}  // namespace deltakit
