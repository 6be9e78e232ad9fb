#include "src/core/atomic_output.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "src/core/direct_writer.h"
#include "src/core/eintr.h"
#include "src/core/error.h"
#include "src/core/mapped_file.h"

namespace fs = std::filesystem;

namespace deltakit {

namespace {
// A name in `folder` that no other run of this process will pick.
std::string temp_in(const fs::path& folder, const std::string& final_path) {
  static std::atomic<unsigned> counter{0};  // compress's workers make part files at once
  std::string leaf = fs::path(final_path).filename().string();
  if (leaf.empty()) leaf = "out";
  std::string name = "." + leaf + ".deltakit-tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  return (folder.empty() ? fs::path(name) : folder / name).string();
}

std::string temp_sibling(const std::string& final_path) {
  return temp_in(fs::path(final_path).parent_path(), final_path);
}

std::string parent_dir(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

// Ordinary I/O on a descriptor opened with O_DIRECT; false (errno set) where fcntl fails.
bool clear_o_direct(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags & ~O_DIRECT) == 0;
}

bool is_within(const fs::path& inner, const fs::path& outer) {
  auto mismatch = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
  return mismatch.first == outer.end();
}
}  // namespace

void check_output_path(const std::string& out, std::span<const std::string> inputs, bool overwrite, bool make_parent) {
  if (out.empty()) throw Error(ErrorCode::Usage, "", "--out is required");
  std::error_code ec;
  fs::path out_abs = fs::weakly_canonical(fs::absolute(out), ec);
  for (const auto& in : inputs) {
    fs::path in_abs = fs::weakly_canonical(fs::absolute(in), ec);
    if (is_within(out_abs, in_abs) || is_within(in_abs, out_abs))
      throw Error(ErrorCode::OutputConflict, out,
                  "output path is (or overlaps) the input " + in + "; choose another --out");
  }
  if (!overwrite && fs::exists(fs::symlink_status(out)))
    throw Error(ErrorCode::OutputConflict, out, "output already exists (pass --overwrite)");
  if (make_parent && !fs::is_directory(parent_dir(out))) {
    fs::create_directories(parent_dir(out), ec);
    if (ec && !fs::is_directory(parent_dir(out)))
      throw Error(ErrorCode::Io, out, "cannot create the parent folder " + parent_dir(out) + ": " + ec.message());
  }
  if (!fs::is_directory(parent_dir(out)))
    throw Error(ErrorCode::Io, out, "parent folder " + parent_dir(out) + " does not exist");
}

void check_output_file_path(const std::string& out, std::span<const std::string> inputs, bool overwrite) {
  check_output_path(out, inputs, overwrite);
  std::error_code ec;
  if (fs::is_directory(out, ec))
    throw Error(ErrorCode::OutputConflict, out, "output is an existing folder; the output here is one file");
}

namespace {
// Alive and not a zombie (a killed rank whose parent is gone may wait unreaped for a while).
bool process_alive(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const size_t paren = text.rfind(')');  // "pid (comm) S ...": comm may hold spaces and parentheses
  return paren == std::string::npos || paren + 2 >= text.size() || (text[paren + 2] != 'Z' && text[paren + 2] != 'X');
}
}  // namespace

void remove_dead_temporaries(const std::string& dir) {
  static const std::string marker = ".deltakit-tmp-";
  std::error_code ec;
  std::vector<fs::path> dead;
  for (const auto& e : fs::directory_iterator(dir.empty() ? "." : dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(marker);
    if (name.empty() || name[0] != '.' || at == std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::strtol(name.c_str() + at + marker.size(), nullptr, 10));
    if (pid > 0 && !process_alive(pid)) dead.push_back(e.path());
  }
  for (const auto& p : dead) fs::remove_all(p, ec);
}

void fsync_directory(const std::string& dir) {
  int fd = retry_eintr([&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (fd < 0) throw_errno(dir, "cannot open folder to fsync");
  int rc = retry_eintr([&] { return ::fsync(fd); });
  ::close(fd);
  if (rc != 0) throw_errno(dir, "fsync of folder failed");
}

// --- AtomicFile ------------------------------------------------------------------------------
AtomicFile::AtomicFile(std::string final_path, FileIo io)
    : AtomicFile(final_path, io, fs::path(final_path).parent_path().string()) {}

AtomicFile::AtomicFile(std::string final_path, FileIo io, const std::string& temp_folder)
    : final_(std::move(final_path)), temp_(temp_in(temp_folder, final_)) {
  const auto create = [&](int extra) {
    return retry_eintr([&] { return ::open(temp_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | extra, 0644); });
  };
  if (io == FileIo::Direct && direct_io_allowed()) {
    fd_ = create(O_DIRECT);
    if (fd_ >= 0) {
      try {
        direct_ = std::make_unique<DirectWriter>(fd_, final_);
      } catch (...) {  // no memory or no thread for it: written through the page cache instead
        if (!clear_o_direct(fd_)) {
          const int e = errno;
          ::close(fd_), ::unlink(temp_.c_str());
          errno = e;
          throw_errno(final_, "cannot write temporary file " + temp_);
        }
      }
    } else if (errno == EINVAL) {  // a file system without O_DIRECT (it may have made the file)
      ::unlink(temp_.c_str());
      fd_ = create(0);
    }
  } else {
    fd_ = create(0);
  }
  if (fd_ < 0) throw_errno(final_, "cannot create temporary file " + temp_);
  if (!direct_) buffer_.reserve(1 << 20);
}

AtomicFile::~AtomicFile() {
  direct_.reset();  // its thread done with the descriptor before it is closed
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::write_all(const char* p, size_t n) {
  while (n) {
    ssize_t k = ::write(fd_, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      throw_errno(final_, "write failed");
    }
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void AtomicFile::flush_buffer() {
  write_all(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void AtomicFile::end_direct() {
  if (!direct_) return;
  direct_->finish();
  direct_.reset();
  if (!clear_o_direct(fd_) || ::lseek(fd_, 0, SEEK_END) < 0)
    throw_errno(final_, "cannot go on writing after direct I/O");
}

void AtomicFile::write(const void* data, size_t n) {
  if (direct_) {
    direct_->write(data, n);
    written_ += n;
    return;
  }
  const char* p = static_cast<const char*>(data);
  if (buffer_.size() + n > buffer_.capacity()) flush_buffer();
  if (n >= buffer_.capacity()) {  // large block: straight to the file, no copy
    write_all(p, n);
  } else {
    buffer_.append(p, n);
  }
  written_ += n;
}

void AtomicFile::write_zeros(size_t n) {
  static const char zeros[4096] = {};
  while (n) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    write(zeros, k);
    n -= k;
  }
}

void AtomicFile::write_at(uint64_t offset, const void* data, size_t n) {
  end_direct();
  flush_buffer();
  const char* p = static_cast<const char*>(data);
  while (n) {
    ssize_t k = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (k < 0) {
      if (errno == EINTR) continue;
      throw_errno(final_, "write failed");
    }
    p += k;
    n -= static_cast<size_t>(k);
    offset += static_cast<uint64_t>(k);
  }
}

void AtomicFile::read_back(uint64_t offset, void* data, size_t n) {
  end_direct();
  flush_buffer();
  char* p = static_cast<char*>(data);
  while (n) {
    ssize_t k = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) throw_errno(final_, "cannot read back the temporary file");
    if (k == 0) throw Error(ErrorCode::Io, final_, "read back past the end of the temporary file");
    p += k;
    n -= static_cast<size_t>(k);
    offset += static_cast<uint64_t>(k);
  }
}

void AtomicFile::resize(uint64_t size) {
  end_direct();
  flush_buffer();
  if (retry_eintr([&] { return ::ftruncate(fd_, static_cast<off_t>(size)); }) != 0)
    throw_errno(final_, "cannot set the temporary file's length");
}

void AtomicFile::commit(bool sync) {
  check_mapped_inputs_intact();
  end_direct();
  flush_buffer();
  if (sync && retry_eintr([&] { return ::fsync(fd_); }) != 0) throw_errno(final_, "fsync failed");
  int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw_errno(final_, "close failed");
  if (retry_eintr([&] { return ::rename(temp_.c_str(), final_.c_str()); }) != 0)
    throw_errno(final_, "rename into place failed");
  committed_ = true;
  if (sync) fsync_directory(parent_dir(final_));
}

// --- AtomicDirectory -------------------------------------------------------------------------
AtomicDirectory::AtomicDirectory(std::string final_path) : final_(std::move(final_path)), temp_(temp_sibling(final_)) {
  std::error_code ec;
  if (!fs::create_directory(temp_, ec) || ec)
    throw Error(ErrorCode::Io, final_, "cannot create temporary folder " + temp_ + ": " + ec.message());
}

AtomicDirectory::AtomicDirectory(std::string final_path, std::string temp_path)
    : final_(std::move(final_path)), temp_(std::move(temp_path)), keep_(true) {}

std::string stable_sibling(const std::string& final_path, const std::string& tag) {
  fs::path p(final_path);
  std::string leaf = p.filename().string();
  if (leaf.empty()) leaf = "out";
  std::string name = "." + leaf + ".deltakit-" + tag;
  return (p.parent_path().empty() ? fs::path(name) : p.parent_path() / name).string();
}

AtomicDirectory::~AtomicDirectory() {
  if (!committed_ && !keep_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

void AtomicDirectory::commit() {
  check_mapped_inputs_intact();
  fsync_directory(temp_);
  std::string aside;
  if (fs::exists(fs::symlink_status(final_))) {  // only reached with --overwrite
    aside = temp_sibling(final_);
    if (retry_eintr([&] { return ::rename(final_.c_str(), aside.c_str()); }) != 0)
      throw_errno(final_, "cannot move the existing output aside");
  }
  if (retry_eintr([&] { return ::rename(temp_.c_str(), final_.c_str()); }) != 0) {
    int e = errno;
    if (!aside.empty()) retry_eintr([&] { return ::rename(aside.c_str(), final_.c_str()); });  // put the old one back
    errno = e;
    throw_errno(final_, "rename into place failed");
  }
  committed_ = true;
  fsync_directory(parent_dir(final_));
  if (!aside.empty()) {
    std::error_code ec;
    fs::remove_all(aside, ec);
  }
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents.data(), contents.size());
  f.commit();
}

}  // namespace deltakit
