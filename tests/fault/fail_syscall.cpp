// LD_PRELOAD shim for fault injection: the Nth call of one system call fails with one errno.
//   DELTAKIT_FAULT_CALL   write | pwrite | fsync | rename | open | mmap | read (read and pread)
//   DELTAKIT_FAULT_N      which call fails (1 = the first); for EINTR, that call and the next
//                         DELTAKIT_FAULT_REPEAT-1 ones (default 3), so a retry loop is exercised
//   DELTAKIT_FAULT_ERRNO  EIO | ENOSPC | EINTR
//   DELTAKIT_FAULT_DELAY_MS  instead of failing, every call of that kind first sleeps this long:
//                         a job made slow enough that a kill lands between its items
// Only calls on regular files count (writes to the terminal, pipes and sockets pass through, so
// the error line itself can be written), and `open` counts only opens for writing: the sweep is
// about the outputs. At exit the shim writes how many calls it saw to DELTAKIT_FAULT_COUNT (if
// set), so a sweep knows when N has passed the last call.
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
const char* target;
long fail_at, repeat = 3, seen, delay_ms;
int fail_errno;

void report() {
  const char* path = getenv("DELTAKIT_FAULT_COUNT");
  if (!path || !target) return;
  FILE* f = fopen(path, "w");
  if (f) {
    fprintf(f, "%ld\n", seen);
    fclose(f);
  }
}

__attribute__((constructor)) void init() {
  target = getenv("DELTAKIT_FAULT_CALL");
  const char* n = getenv("DELTAKIT_FAULT_N");
  const char* e = getenv("DELTAKIT_FAULT_ERRNO");
  const char* r = getenv("DELTAKIT_FAULT_REPEAT");
  const char* d = getenv("DELTAKIT_FAULT_DELAY_MS");
  if (d) delay_ms = atol(d);
  fail_at = n ? atol(n) : 0;
  if (r) repeat = atol(r);
  fail_errno = !e ? EIO : !strcmp(e, "ENOSPC") ? ENOSPC : !strcmp(e, "EINTR") ? EINTR : EIO;
  atexit(report);
}

bool is_regular(int fd) {
  struct stat st;
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

// Whether this call (of `call`, counted only if `counts`) is to fail.
bool inject(const char* call, bool counts) {
  if (!target || strcmp(target, call) != 0 || !counts) return false;
  const long at = __atomic_add_fetch(&seen, 1, __ATOMIC_RELAXED);  // OpenMP threads write too
  if (delay_ms > 0) {
    usleep(static_cast<useconds_t>(delay_ms * 1000));
    return false;
  }
  const long last = fail_at + (fail_errno == EINTR ? repeat - 1 : 0);
  if (fail_at > 0 && at >= fail_at && at <= last) {
    errno = fail_errno;
    return true;
  }
  return false;
}

bool for_writing(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_CREAT); }
}  // namespace

#define REAL(name) (reinterpret_cast<decltype(&name)>(dlsym(RTLD_NEXT, #name)))

extern "C" {

ssize_t write(int fd, const void* buf, size_t n) {
  if (inject("write", is_regular(fd))) return -1;
  return REAL(write)(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  if (inject("pwrite", is_regular(fd))) return -1;
  return REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  if (inject("pwrite", is_regular(fd))) return -1;
  return REAL(pwrite64)(fd, buf, n, off);
}

ssize_t pread(int fd, void* buf, size_t n, off_t off) {
  if (inject("read", is_regular(fd))) return -1;
  return REAL(pread)(fd, buf, n, off);
}

ssize_t pread64(int fd, void* buf, size_t n, off_t off) {
  if (inject("read", is_regular(fd))) return -1;
  return REAL(pread64)(fd, buf, n, off);
}

ssize_t read(int fd, void* buf, size_t n) {
  if (inject("read", is_regular(fd))) return -1;
  return REAL(read)(fd, buf, n);
}

int fsync(int fd) {
  if (inject("fsync", 1)) return -1;
  return REAL(fsync)(fd);
}

int rename(const char* from, const char* to) {
  if (inject("rename", 1)) return -1;
  return REAL(rename)(from, to);
}

int open(const char* path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));  // promoted through ...
    va_end(ap);
  }
  if (inject("open", for_writing(flags))) return -1;
  return REAL(open)(path, flags, mode);
}

int open64(const char* path, int flags, ...) {
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));  // promoted through ...
    va_end(ap);
  }
  if (inject("open", for_writing(flags))) return -1;
  return REAL(open64)(path, flags, mode);
}

void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (inject("mmap", is_regular(fd))) return MAP_FAILED;
  return REAL(mmap)(addr, len, prot, flags, fd, off);
}

void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (inject("mmap", is_regular(fd))) return MAP_FAILED;
  return REAL(mmap64)(addr, len, prot, flags, fd, off);
}

}  // extern "C"
