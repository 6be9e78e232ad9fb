// Continuous batching: requests join the running batch between steps and leave as soon as they
// finish, so a long generation never holds a short one back. One thread runs the steps; request
// handlers submit and wait on their request (or stream from it as tokens arrive).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "src/serve/engine.h"
#include "src/serve/sampler.h"

namespace deltakit {

struct Request {
  // what to run (set before submit)
  std::shared_ptr<const Tenant> tenant;  // null: the base
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  SamplingParams sampling;
  std::vector<std::string> stop;  // stop strings (need a tokenizer)
  int32_t eos = -1;               // stop token (-1: none)
  // progress, under mu; cv is notified on every token and at the end
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> tokens;  // generated
  std::string text;             // their text, cut before a stop string
  size_t stable = 0;            // text[0, stable) can be sent: no partial UTF-8 or stop-string prefix
  bool done = false;
  std::string finish_reason;           // "stop" or "length"
  std::atomic<bool> cancelled{false};  // the client went away: the slot is freed at the next step
  std::chrono::steady_clock::time_point submitted, first_token;
};

struct SchedulerOptions {
  int64_t max_batch = 32;      // sequences in one step
  int64_t prefill_rows = 256;  // prompt tokens fed per step, over all sequences
  unsigned threads = 1;
};

struct SchedulerMetrics {
  uint64_t requests = 0, finished = 0, cancelled = 0, prompt_tokens = 0, generated_tokens = 0, steps = 0, step_rows = 0,
           step_sequences = 0;
  int64_t running = 0, waiting = 0;
  double busy_seconds = 0;
};

class Scheduler {
 public:
  Scheduler(const ServedBase& base, const SchedulerOptions& opt);
  ~Scheduler();
  void submit(std::shared_ptr<Request> r);
  bool idle() const;
  SchedulerMetrics metrics() const;
  void stop();  // finishes the step under way, then returns; unfinished requests end "abort"

 private:
  struct Active {
    std::shared_ptr<Request> req;
    std::unique_ptr<Sequence> seq;
    int64_t fed = 0;  // prompt tokens fed
  };
  void loop();
  void finish(Active& a, const std::string& reason);
  void deliver(Active& a, int32_t token);

  const ServedBase& base_;
  SchedulerOptions opt_;
  Engine engine_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Request>> waiting_;
  std::vector<Active> running_;
  SchedulerMetrics m_;
  bool stopping_ = false;
  std::thread thread_;
};

// text[0, n) with no partial UTF-8 character at its end.
size_t complete_utf8_prefix(const std::string& text);

}  // namespace deltakit
