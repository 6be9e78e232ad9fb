#include "src/pipeline/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "src/core/error.h"

namespace deltakit {

namespace {
double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
std::string eta_text(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  if (s < 120)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 7200)
    std::snprintf(buf, sizeof buf, "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else
    std::snprintf(buf, sizeof buf, "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}
}  // namespace

ProgressReporter::ProgressReporter(const ProgressOptions& opt, std::string what, std::string unit, uint64_t total_items,
                                   uint64_t total_bytes, std::function<ProgressCount()> poll, bool active)
    : opt_(opt),
      what_(std::move(what)),
      unit_(std::move(unit)),
      total_items_(total_items),
      total_bytes_(total_bytes),
      poll_(std::move(poll)) {
  if (!active) return;
  tty_ = !opt_.quiet && ::isatty(STDERR_FILENO);
  if (!opt_.log_json.empty()) {
    log_ = std::fopen(opt_.log_json.c_str(), "a");
    if (!log_) throw_errno(opt_.log_json, "cannot open the --log-json file");
  }
  start_ = last_line_ = now_s();
  thread_ = std::thread([this] { loop(); });
}

ProgressReporter::~ProgressReporter() {
  stop_thread();
  if (log_) std::fclose(log_);
}

void ProgressReporter::stop_thread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ProgressReporter::finish() {
  if (!thread_.joinable()) return;
  stop_thread();
  report(true);
}

void ProgressReporter::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    lock.unlock();
    report(false);
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(500), [this] { return stop_; });
  }
}

void ProgressReporter::report(bool final) {
  ProgressCount c = final ? ProgressCount{total_items_, total_bytes_} : poll_();
  const double t = now_s(), elapsed = t - start_;
  const double rate = elapsed > 0 ? c.bytes / elapsed : 0;  // bytes/s of input
  const double eta = rate > 0 ? (double(total_bytes_) - double(c.bytes)) / rate : NAN;
  char line[256];
  std::snprintf(line, sizeof line, "%s: %llu/%llu %s, %.2f/%.2f GB, %.2f GB/s, %s %s", what_.c_str(),
                (unsigned long long)c.items, (unsigned long long)total_items_, unit_.c_str(), c.bytes / 1e9,
                total_bytes_ / 1e9, rate / 1e9, final ? "done in" : "ETA",
                final ? eta_text(elapsed).c_str() : eta_text(eta).c_str());
  if (log_ && (c.items != last_items_ || final)) {
    std::fprintf(log_,
                 "{\"what\":%s,\"unit\":\"%s\",\"done\":%llu,\"total\":%llu,\"bytes_done\":%llu,\"bytes_total\":%llu,"
                 "\"elapsed_s\":%.3f,\"gbps\":%.4f,\"eta_s\":%.1f,\"final\":%s}\n",
                 nlohmann::json(what_).dump().c_str(), unit_.c_str(), (unsigned long long)c.items,
                 (unsigned long long)total_items_, (unsigned long long)c.bytes, (unsigned long long)total_bytes_,
                 elapsed, rate / 1e9, std::isfinite(eta) ? eta : -1.0, final ? "true" : "false");
    std::fflush(log_);
  }
  last_items_ = c.items;
  if (opt_.quiet) return;
  if (tty_) {
    std::fprintf(stderr, "\r%-100s%s", line, final ? "\n" : "");
  } else if (final || t - last_line_ >= 10 || (c.items - last_line_items_) * 10 >= total_items_ + 9) {
    // none in a job's first 2 s: a short job's log holds its summary (or its one error line) alone
    if (!final && (c.items == last_line_items_ || elapsed < 2.0)) return;
    std::fprintf(stderr, "%s\n", line);
    last_line_ = t;
    last_line_items_ = c.items;
  }
  std::fflush(stderr);
}

}  // namespace deltakit
