// A file's bytes written in order with O_DIRECT, from two aligned buffers: the caller fills one
// while a thread writes the other, so the device's time overlaps the caller's work and the
// bytes never pass through the page cache.
//
// Why: apply and merge write an output about as large as the model. Through the page cache every
// output page is a fresh page the kernel must find, fault in and copy into (on the VMs we measure,
// memory freed a few seconds earlier has gone back to the host, and a 931 MB write + fsync took
// 2.1-2.9 s where O_DIRECT took 0.36-0.54 s), and the writeback then waits at the fsync anyway.
// What is given up: the output is not left in the page cache for a reader right after.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace deltakit {

class DirectWriter {
 public:
  static constexpr size_t kAlign = 4096;      // offsets, lengths and buffers (any logical block size up to it)
  static constexpr size_t kBuffer = 4 << 20;  // each of the two

  // `fd` was opened with O_DIRECT at offset 0 and stays the caller's; `where` names it in errors.
  DirectWriter(int fd, std::string where);
  ~DirectWriter();  // waits for the write in flight (its error, if any, is the caller's to have seen)
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  void write(const void* data, size_t n);
  // Every byte written on the file (a last partial block padded with zeros, then the file cut to
  // its length) and nothing in flight; after it the caller may do ordinary I/O on the fd (with
  // O_DIRECT cleared) and must not write() here again. Throws Error(Io) if a write failed.
  void finish();
  uint64_t size() const { return offset_ + fill_; }

 private:
  void submit();                 // the full current buffer to the thread, after the one in flight
  void wait_idle();              // the write in flight done; throws its error
  void throw_if_failed() const;  // Error(Io) with a failed write's errno
  void run();                    // the thread
  void write_out(const uint8_t* p, size_t n, uint64_t at);  // pwrite until done; a failure's errno in err_

  int fd_;
  std::string where_;
  struct Free {
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Free> buf_[2];
  int cur_ = 0;
  size_t fill_ = 0;      // bytes in the current buffer
  uint64_t offset_ = 0;  // where the current buffer goes (a multiple of kAlign)

  std::mutex m_;
  std::condition_variable cv_;
  bool busy_ = false, stop_ = false;  // a buffer in flight; the thread to end
  const uint8_t* job_ = nullptr;
  size_t job_len_ = 0;
  uint64_t job_at_ = 0;
  int err_ = 0;  // errno of a failed write
  std::thread thread_;
};

// Whether outputs may be written with O_DIRECT: not where DELTAKIT_DIRECT_IO=0.
bool direct_io_allowed();

}  // namespace deltakit
