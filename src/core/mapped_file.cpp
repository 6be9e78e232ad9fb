#include "src/core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/core/error.h"

namespace deltakit {

MappedFile::MappedFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) {
      ::close(fd_);
      throw_errno(path, "cannot mmap");
    }
    data_ = static_cast<const uint8_t*>(p);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void MappedFile::check_intact() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw_errno(path_, "cannot stat");
  if (static_cast<uint64_t>(st.st_size) < size_)
    throw Error(ErrorCode::Io, path_,
                "file shrank from " + std::to_string(size_) + " to " +
                    std::to_string(st.st_size) + " bytes while in use");
}

void MappedFile::advise_sequential(uint64_t offset, uint64_t len) const {
  if (!data_ || len == 0) return;
  uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t start = offset / page * page;
  ::madvise(const_cast<uint8_t*>(data_) + start, len + (offset - start), MADV_SEQUENTIAL);
  ::madvise(const_cast<uint8_t*>(data_) + start, len + (offset - start), MADV_WILLNEED);
}

void MappedFile::advise_done(uint64_t offset, uint64_t len) const {
  if (!data_ || len == 0) return;
  uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  uint64_t start = offset / page * page;
  ::madvise(const_cast<uint8_t*>(data_) + start, len + (offset - start), MADV_DONTNEED);
}

}  // namespace deltakit
