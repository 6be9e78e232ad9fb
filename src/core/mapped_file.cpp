#include "src/core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "src/core/eintr.h"
#include "src/core/error.h"

namespace deltakit {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  fd_ = retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC); });  // a FIFO must not block
  if (fd_ < 0) throw_errno(path, "cannot open");
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    ::close(fd_);
    throw_errno(path, "cannot stat");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error(ErrorCode::Io, path, "not a regular file");
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

void MappedFile::map() const {
  std::call_once(mapped_, [this] {
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) throw_errno(path_, "cannot mmap");
    data_ = static_cast<const uint8_t*>(p);
  });
}

std::vector<uint8_t> MappedFile::read(uint64_t offset, uint64_t n) const {
  std::vector<uint8_t> out(n);
  uint64_t done = 0;
  while (done < n) {
    ssize_t k = ::pread(fd_, out.data() + done, n - done, static_cast<off_t>(offset + done));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw_errno(path_, "read failed");
    if (k == 0) throw Error(ErrorCode::Io, path_, "file ended while reading");
    done += static_cast<uint64_t>(k);
  }
  return out;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void MappedFile::check_intact() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw_errno(path_, "cannot stat");
  if (static_cast<uint64_t>(st.st_size) < size_)
    throw Error(
        ErrorCode::Io, path_,
        "file shrank from " + std::to_string(size_) + " to " + std::to_string(st.st_size) + " bytes while in use");
}

namespace {
// Page-aligned [start, end) covering [offset, offset+len) inside a mapping of `size` bytes.
std::pair<uint64_t, uint64_t> page_range(uint64_t offset, uint64_t len, uint64_t size) {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t end = std::min(size, offset + len);
  return {offset / page * page, end};
}
}  // namespace

void MappedFile::populate(uint64_t offset, uint64_t len) const {
  map();
  if (!data_ || len == 0) return;
  auto [start, end] = page_range(offset, len, size_);
  uint8_t* p = const_cast<uint8_t*>(data_) + start;
#ifdef MADV_POPULATE_READ
  if (::madvise(p, end - start, MADV_POPULATE_READ) == 0) return;
#endif
  ::madvise(p, end - start, MADV_WILLNEED);  // older kernels: read-ahead only
}

void MappedFile::release(uint64_t offset, uint64_t len) const {
  if (!data_ || len == 0) return;
  auto [start, end] = page_range(offset, len, size_);
  ::madvise(const_cast<uint8_t*>(data_) + start, end - start, MADV_DONTNEED);
}

}  // namespace deltakit
