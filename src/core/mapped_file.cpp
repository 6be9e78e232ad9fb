#include "src/core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>
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

// --- the SIGBUS guard -----------------------------------------------------------------------
// A file truncated while mapped raises SIGBUS when a page past its new end is read. The handler
// maps zeros over the rest of that mapping and flags it, so the pass runs on to its end, where
// check_intact() turns the flag into an Error naming the file; the job fails as for any bad input
// (no output, temporaries removed) instead of dying. Only async-signal-safe work in the handler:
// a lookup in a fixed table of atomics and one mmap. A SIGBUS outside our mappings keeps its
// default action.
namespace {
struct GuardSlot {
  std::atomic<uintptr_t> start{0};
  std::atomic<size_t> len{0};
  std::atomic<bool> faulted{false};
  const std::string* path = nullptr;  // the MappedFile's, while it lives
};
std::atomic<bool> any_fault{false};
std::mutex faulted_mutex;
std::string faulted_path;  // a faulted mapping's file, kept when its MappedFile is gone
constexpr int kGuardSlots = 1024;
GuardSlot guard_slots[kGuardSlots];

void on_sigbus(int sig, siginfo_t* info, void*) {
  const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (auto& slot : guard_slots) {
    const uintptr_t start = slot.start.load(), len = slot.len.load();
    if (start == 0 || addr < start || addr >= start + len) continue;
    const uintptr_t from = addr / page * page, to = (start + len + page - 1) / page * page;
    void* p =
        ::mmap(reinterpret_cast<void*>(from), to - from, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p != MAP_FAILED) {
      slot.faulted.store(true);
      any_fault.store(true);
      return;  // the read is retried and now sees zeros
    }
    break;
  }
  ::signal(sig, SIG_DFL);  // not ours (or no remedy): the default action on return
}

int guard(const uint8_t* data, size_t len, const std::string* path) {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGBUS, &sa, nullptr);
  });
  for (int i = 0; i < kGuardSlots; ++i) {
    uintptr_t expected = 0;
    if (guard_slots[i].start.compare_exchange_strong(expected, reinterpret_cast<uintptr_t>(data))) {
      guard_slots[i].faulted.store(false);
      guard_slots[i].path = path;
      guard_slots[i].len.store(len);
      return i;
    }
  }
  return -1;  // table full: this mapping is unguarded (a truncation kills as before)
}

void unguard(int slot) {
  if (slot < 0) return;
  if (guard_slots[slot].faulted.load()) {
    std::lock_guard<std::mutex> lock(faulted_mutex);
    if (faulted_path.empty()) faulted_path = *guard_slots[slot].path;
  }
  guard_slots[slot].len.store(0);
  guard_slots[slot].start.store(0);
}
}  // namespace

void MappedFile::map() const {
  std::call_once(mapped_, [this] {
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) throw_errno(path_, "cannot mmap");
    data_ = static_cast<const uint8_t*>(p);
    guard_slot_ = guard(data_, size_, &path_);
  });
}

namespace {
Error shrank(const std::string& path, uint64_t was, int64_t now) {
  return Error(ErrorCode::Io, path,
               "file shrank while in use (from " + std::to_string(was) + " to " + std::to_string(now) + " bytes)");
}
}  // namespace

std::vector<uint8_t> MappedFile::read(uint64_t offset, uint64_t n) const {
  std::vector<uint8_t> out(n);
  read_into(offset, n, out.data());
  return out;
}

void MappedFile::read_into(uint64_t offset, uint64_t n, uint8_t* dst) const {
  uint64_t done = 0;
  while (done < n) {
    ssize_t k = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw_errno(path_, "read failed");
    if (k == 0) {  // past the end: the file was cut under us, or never was that long
      struct stat st {};
      if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) < size_) throw shrank(path_, size_, st.st_size);
      throw Error(ErrorCode::Io, path_, "file ended while reading");
    }
    done += static_cast<uint64_t>(k);
  }
}

MappedFile::~MappedFile() {
  unguard(guard_slot_);
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void check_mapped_inputs_intact() {
  if (!any_fault.load()) return;
  for (const auto& slot : guard_slots)
    if (slot.start.load() && slot.faulted.load())
      throw Error(ErrorCode::Io, *slot.path, "file shrank while in use (a read ran past its new end)");
  std::lock_guard<std::mutex> lock(faulted_mutex);
  throw Error(ErrorCode::Io, faulted_path, "file shrank while in use (a read ran past its new end)");
}

void MappedFile::check_intact() const {
  if (guard_slot_ >= 0 && guard_slots[guard_slot_].faulted.load())
    throw Error(ErrorCode::Io, path_, "file shrank while in use (a read ran past its new end)");
  struct stat st {};
  if (::fstat(fd_, &st) != 0) throw_errno(path_, "cannot stat");
  if (static_cast<uint64_t>(st.st_size) < size_) throw shrank(path_, size_, st.st_size);
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
