// Read-only mmap of a whole file. The size is taken with fstat before mapping and checked again
// by `still_intact()`, so callers can detect a file truncated under them before touching pages
// past its new end (which would raise SIGBUS).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace deltakit {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  uint64_t size() const { return size_; }
  // Throws Error(Io) if the file is now shorter than when it was mapped.
  void check_intact() const;
  // Hint the kernel that [offset, offset+len) will be read sequentially / is no longer needed.
  void advise_sequential(uint64_t offset, uint64_t len) const;
  void advise_done(uint64_t offset, uint64_t len) const;

 private:
  std::string path_;
  int fd_ = -1;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace deltakit
