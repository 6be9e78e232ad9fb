// Read-only mmap of a whole file, made on first use: opening only takes the size (fstat), so a
// rank that reads a shard's header but none of its tensors never maps it. The size is checked
// again by `check_intact()`, so callers can detect a file truncated under them. A read past the
// new end of a truncated file raises SIGBUS: a guard maps zeros there instead and flags the file,
// and check_intact() then throws, so the job ends with an error naming the file, never a crash.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace deltakit {

// Throws Error(Io) naming the file if any mapped input of this process was truncated while read
// (its pages read as zeros): every output's commit asks first, so no output is built from them.
void check_mapped_inputs_intact();

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const uint8_t> bytes() const {
    map();
    return {data_, size_};
  }
  uint64_t size() const { return size_; }
  // [offset, offset+n) by pread, without mapping (headers). Throws Error(Io) on a short read.
  std::vector<uint8_t> read(uint64_t offset, uint64_t n) const;
  // The same into dst (a streaming pass's reused block buffer: no page of the mapping touched).
  void read_into(uint64_t offset, uint64_t n, uint8_t* dst) const;
  // Throws Error(Io) if the file is now shorter than when it was mapped.
  void check_intact() const;
  // Map the pages of [offset, offset+len) in one call before they are read (MADV_POPULATE_READ:
  // one syscall instead of a page fault per 4 KB, which dominates on tmpfs), and unmap them
  // afterwards so a streaming pass keeps one tensor, not the model, in its resident set.
  void populate(uint64_t offset, uint64_t len) const;
  void release(uint64_t offset, uint64_t len) const;

 private:
  void map() const;
  std::string path_;
  int fd_ = -1;
  mutable std::once_flag mapped_;
  mutable const uint8_t* data_ = nullptr;
  mutable int guard_slot_ = -1;  // in the SIGBUS guard's table, once mapped
  uint64_t size_ = 0;
};

}  // namespace deltakit
