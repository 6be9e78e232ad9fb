// Rank 0's stitch, run ahead of the commit: while the ranks still encode, a thread takes the
// journal's records in the output's order as they appear and places them. What is left for the
// commit is only the records that were not there yet when the last item finished, so the stitch
// stops being a serial phase after the ranks' work (on one rank it runs on another core, beside
// the encoder; on several, beside the other ranks' work).
//
// The order is fixed (record 0, 1, 2, ...), so the output is the same bytes however early or
// late each record appears. The thread only waits where the next record is missing: a worker of
// this rank pokes it when one lands, and records of other ranks are looked for every few ms.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace deltakit {

class StitchAhead {
 public:
  // ready(i): record i can be placed now; place(i): place it (may throw: the thread stops and
  // finish() rethrows). Records are placed in order, from 0, and never twice.
  StitchAhead(size_t count, std::function<bool(size_t)> ready, std::function<void(size_t)> place);
  ~StitchAhead();  // stops and joins; an error not yet taken by finish() is dropped (the job is failing)
  StitchAhead(const StitchAhead&) = delete;
  StitchAhead& operator=(const StitchAhead&) = delete;

  void poke();  // a record landed here: look again now rather than at the next poll
  // Stops the thread once the record it is placing is in, rethrows its error, and returns how
  // many records it placed: the commit goes on from there.
  size_t finish();

 private:
  void run();
  size_t count_;
  std::function<bool(size_t)> ready_;
  std::function<void(size_t)> place_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false, poked_ = false;
  size_t next_ = 0;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace deltakit
