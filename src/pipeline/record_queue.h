// A rank's journal records written behind its encoders. A record goes to the journal around the
// page cache (journal_part.h), and a direct write is synchronous: written in the encoder's own
// thread, every tensor waited for the disk. Here one thread per rank takes the records, held in
// memory, in the order given, and renames each into place once whole; the encoder goes on to its
// next tensor at once. The records held wait within a cap (the encoder waits beyond it), so the
// memory stays bounded; a write that fails is rethrown to the encoder at its next push or at
// drain(), which every rank calls before its items count as done.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

#include "src/pipeline/journal_part.h"

namespace deltakit {

class RecordQueue {
 public:
  explicit RecordQueue(uint64_t cap_bytes = uint64_t{16} << 20);
  ~RecordQueue();  // stops after the record being written; the rest are dropped (the job is failing)
  RecordQueue(const RecordQueue&) = delete;
  RecordQueue& operator=(const RecordQueue&) = delete;

  void push(std::string path, std::shared_ptr<const HeldRecord> record);
  void drain();  // every record pushed is in the journal (or the first failure is rethrown)

 private:
  void run();
  void rethrow_failure();  // under the lock
  uint64_t cap_, queued_bytes_ = 0;
  std::deque<std::pair<std::string, std::shared_ptr<const HeldRecord>>> queue_;
  bool busy_ = false, stop_ = false;
  std::exception_ptr error_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread thread_;
};

}  // namespace deltakit
