#include "src/serve/scheduler.h"

#include <algorithm>
#include <cstdio>

namespace deltakit {

size_t complete_utf8_prefix(const std::string& s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    const size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return back < len ? n - back : n;
  }
  return n;
}

Scheduler::Scheduler(const ServedBase& base, const SchedulerOptions& opt)
    : base_(base), opt_(opt), engine_(base, opt.threads), thread_([this] { loop(); }) {}

Scheduler::~Scheduler() { stop(); }

void Scheduler::submit(std::shared_ptr<Request> r) {
  r->submitted = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_.push_back(std::move(r));
    ++m_.requests;
    m_.waiting = static_cast<int64_t>(waiting_.size());
  }
  cv_.notify_one();
}

bool Scheduler::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.empty() && m_.running == 0;
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  return m_;
}

void Scheduler::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::finish(Active& a, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(a.req->mu);
    a.req->done = true;
    a.req->finish_reason = reason;
    a.req->stable = a.req->text.size();
    a.req->cv.notify_all();
  }
  std::lock_guard<std::mutex> m(mu_);  // never both locks at once
  ++m_.finished;
}

// One sampled token: its text, the stop strings, and whether the request is done.
void Scheduler::deliver(Active& a, int32_t token) {
  Request& r = *a.req;
  const bool eos = token == r.eos;
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    if (r.tokens.empty()) r.first_token = std::chrono::steady_clock::now();
    if (!eos) r.tokens.push_back(token);
    if (base_.tokenizer && !eos) {
      r.text = base_.tokenizer->decode(r.tokens);
      size_t cut = std::string::npos;
      for (const std::string& s : r.stop)
        if (!s.empty()) cut = std::min(cut, r.text.find(s));
      if (cut != std::string::npos) {
        r.text.resize(cut);
        reason = "stop";
      }
      // hold back a tail that may still become a stop string
      size_t stable = complete_utf8_prefix(r.text);
      for (const std::string& s : r.stop)
        for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), stable); k > 0; --k)
          if (r.text.compare(stable - k, k, s, 0, k) == 0) {
            stable -= k;
            break;
          }
      r.stable = reason.empty() ? stable : r.text.size();
    }
    if (eos)
      reason = "stop";
    else if (static_cast<int64_t>(r.tokens.size()) >= r.max_tokens || a.seq->pos >= a.seq->capacity)
      if (reason.empty()) reason = "length";
    r.cv.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!eos) ++m_.generated_tokens;
  }
  if (!reason.empty()) finish(a, reason);
}

void Scheduler::loop() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !waiting_.empty() || !running_.empty(); });
      if (stopping_) break;
      while (!waiting_.empty() && static_cast<int64_t>(running_.size()) < opt_.max_batch) {
        Active a;
        a.req = std::move(waiting_.front());
        waiting_.pop_front();
        const int64_t cap = static_cast<int64_t>(a.req->prompt.size()) + a.req->max_tokens;
        try {
          a.seq = std::make_unique<Sequence>(base_, a.req->tenant, std::min<int64_t>(cap, base_.config.max_seq));
        } catch (const std::bad_alloc&) {  // no memory for its KV cache: this request fails, not the server
          std::lock_guard<std::mutex> rl(a.req->mu);
          a.req->done = true, a.req->finish_reason = "error";
          a.req->cv.notify_all();
          continue;
        }
        m_.prompt_tokens += a.req->prompt.size();
        running_.push_back(std::move(a));
      }
      m_.waiting = static_cast<int64_t>(waiting_.size());
      m_.running = static_cast<int64_t>(running_.size());
    }
    // a client that went away frees its slot now
    for (Active& a : running_)
      if (a.req->cancelled) {
        finish(a, "abort");
        std::lock_guard<std::mutex> lock(mu_);
        ++m_.cancelled;
      }
    std::erase_if(running_, [](const Active& a) { return a.req->cancelled.load(); });
    if (running_.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      m_.running = 0;
      continue;
    }
    // this step's chunks: prompt pieces within the prefill budget, one token for the rest
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<StepChunk> chunks;
    std::vector<size_t> owner;
    int64_t budget = opt_.prefill_rows;
    for (size_t i = 0; i < running_.size(); ++i) {
      Active& a = running_[i];
      const int64_t plen = static_cast<int64_t>(a.req->prompt.size());
      StepChunk c;
      c.seq = a.seq.get();
      if (a.fed < plen) {
        const int64_t n = std::min(plen - a.fed, std::max<int64_t>(budget, 1));
        if (budget <= 0 && !chunks.empty()) continue;
        budget -= n;
        c.tokens.assign(a.req->prompt.begin() + a.fed, a.req->prompt.begin() + a.fed + n);
        a.fed += n;
        c.want_logits = a.fed == plen;
      } else {
        c.tokens = {a.req->tokens.back()};
        c.want_logits = true;
      }
      chunks.push_back(std::move(c));
      owner.push_back(i);
    }
    try {
      engine_.step(chunks);
    } catch (const std::exception& e) {
      // out of memory, most likely: the running requests end with an error, the server goes on
      std::fprintf(stderr, "deltakit serve: a decoding step failed (%s); its %zu requests end with an error\n",
                   e.what(), running_.size());
      for (Active& a : running_) finish(a, "error");
      running_.clear();
      std::lock_guard<std::mutex> lock(mu_);
      m_.running = 0;
      continue;
    }
    int64_t rows = 0;
    for (size_t j = 0; j < chunks.size(); ++j) {
      rows += static_cast<int64_t>(chunks[j].tokens.size());
      if (!chunks[j].want_logits) continue;
      Active& a = running_[owner[j]];
      const uint64_t step = a.req->tokens.size();
      deliver(a, sample_token(chunks[j].logits, a.req->sampling, step));
    }
    std::erase_if(running_, [](const Active& a) {
      std::lock_guard<std::mutex> lock(a.req->mu);
      return a.req->done;
    });
    std::lock_guard<std::mutex> lock(mu_);
    ++m_.steps;
    m_.step_rows += static_cast<uint64_t>(rows);
    m_.step_sequences += chunks.size();
    m_.running = static_cast<int64_t>(running_.size());
    m_.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  // stopping: whatever is left ends now
  for (Active& a : running_) finish(a, "abort");
  running_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : waiting_) {
    std::lock_guard<std::mutex> rl(r->mu);
    r->done = true, r->finish_reason = "abort";
    r->cv.notify_all();
  }
  waiting_.clear();
}

}  // namespace deltakit
