#include "src/core/whole_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "src/core/eintr.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

[[noreturn]] void fail(const std::string& path, const std::string& what, const std::string& why) {
  throw Error(ErrorCode::Io, path, "cannot read the " + what + ": " + why);
}
}  // namespace

std::string read_whole_file(const std::string& path, const std::string& what, uint64_t cap) {
  // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one
  Fd f{retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC); })};
  if (f.fd < 0) fail(path, what, std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail(path, what, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, what, "not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > cap)
    fail(path, what, std::to_string(size) + " bytes, more than the " + std::to_string(cap) + "-byte limit");
  std::string out(size, '\0');
  uint64_t done = 0;
  while (done < size) {
    ssize_t k = ::read(f.fd, out.data() + done, size - done);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) fail(path, what, std::strerror(errno));
    if (k == 0) break;  // shrank while read: what is there is what it holds now
    done += static_cast<uint64_t>(k);
  }
  out.resize(done);
  return out;
}

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, what, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, what, "not a regular file");
}

}  // namespace deltakit
