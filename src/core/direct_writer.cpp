#include "src/core/direct_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "src/core/eintr.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
// Buffers given back by finished writers, for the next (a merge writes shard after shard): the
// same pages each time, not 8 MB of fresh ones per shard. Freed at exit.
struct SpareBuffers {
  std::mutex mutex;
  std::vector<uint8_t*> buffers;
  ~SpareBuffers() {
    for (uint8_t* p : buffers) std::free(p);
  }
};
SpareBuffers& spares() {
  static SpareBuffers s;
  return s;
}
}  // namespace

void DirectWriter::Free::operator()(uint8_t* p) const {
  SpareBuffers& s = spares();
  std::lock_guard lock(s.mutex);
  s.buffers.push_back(p);
}

DirectWriter::DirectWriter(int fd, std::string where) : fd_(fd), where_(std::move(where)) {
  for (auto& b : buf_) {
    {
      SpareBuffers& s = spares();
      std::lock_guard lock(s.mutex);
      if (!s.buffers.empty()) {
        b.reset(s.buffers.back());
        s.buffers.pop_back();
        continue;
      }
    }
    b.reset(static_cast<uint8_t*>(std::aligned_alloc(kAlign, kBuffer)));
    if (!b) throw std::bad_alloc();
  }
  thread_ = std::thread([this] { run(); });
}

DirectWriter::~DirectWriter() {
  {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return !busy_; });
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void DirectWriter::write(const void* data, size_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (n) {
    const size_t k = std::min(n, kBuffer - fill_);
    std::memcpy(buf_[cur_].get() + fill_, p, k);
    fill_ += k, p += k, n -= k;
    if (fill_ == kBuffer) submit();
  }
}

void DirectWriter::submit() {
  wait_idle();
  {
    std::lock_guard lock(m_);
    job_ = buf_[cur_].get(), job_len_ = fill_, job_at_ = offset_;
    busy_ = true;
  }
  cv_.notify_all();
  offset_ += fill_;
  cur_ ^= 1, fill_ = 0;
}

void DirectWriter::wait_idle() {
  std::unique_lock lock(m_);
  cv_.wait(lock, [&] { return !busy_; });
  throw_if_failed();
}

void DirectWriter::throw_if_failed() const {
  if (!err_) return;
  errno = err_;
  throw_errno(where_, "write failed");
}

void DirectWriter::finish() {
  wait_idle();
  if (fill_ == 0) return;
  const size_t padded = (fill_ + kAlign - 1) / kAlign * kAlign;
  std::memset(buf_[cur_].get() + fill_, 0, padded - fill_);
  write_out(buf_[cur_].get(), padded, offset_);
  throw_if_failed();
  if (retry_eintr([&] { return ::ftruncate(fd_, static_cast<off_t>(offset_ + fill_)); }) != 0)
    throw_errno(where_, "cannot cut the file to its length");
  offset_ += fill_, fill_ = 0;  // (unaligned now: nothing more is written here)
}

void DirectWriter::write_out(const uint8_t* p, size_t n, uint64_t at) {
  while (n) {
    const ssize_t k = ::pwrite(fd_, p, n, static_cast<off_t>(at));
    if (k < 0) {
      if (errno == EINTR) continue;
      err_ = errno;
      return;
    }
    if (k == 0) {  // nothing written and no error: the device is full in all but name
      err_ = ENOSPC;
      return;
    }
    // a short direct write ends on a block boundary of the device; go on from there
    p += k, n -= static_cast<size_t>(k), at += static_cast<uint64_t>(k);
  }
}

void DirectWriter::run() {
  std::unique_lock lock(m_);
  for (;;) {
    cv_.wait(lock, [&] { return busy_ || stop_; });
    if (!busy_) return;  // stop_ with nothing in flight
    const uint8_t* p = job_;
    const size_t n = job_len_;
    const uint64_t at = job_at_;
    lock.unlock();
    write_out(p, n, at);  // err_ is read only after busy_ drops, under the lock
    lock.lock();
    busy_ = false;
    cv_.notify_all();
  }
}

bool direct_io_allowed() {
  const char* v = std::getenv("DELTAKIT_DIRECT_IO");
  return !(v && std::strcmp(v, "0") == 0);
}

}  // namespace deltakit
