#include "src/core/collective.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

namespace deltakit {

void collectively(Comm& comm, const std::function<void()>& fn) {
  std::string verdict;  // empty: fine; else code byte + message
  try {
    fn();
  } catch (const AgreedError&) {
    throw;  // already agreed by a nested phase
  } catch (const Error& e) {
    verdict = std::string(1, static_cast<char>(e.code())) + e.what();
  }
  if (comm.size() == 1) {
    if (verdict.empty()) return;
    throw AgreedError(static_cast<ErrorCode>(static_cast<unsigned char>(verdict[0])), verdict.substr(1));
  }
  for (const auto& v : comm.allgather(verdict))
    if (!v.empty()) throw AgreedError(static_cast<ErrorCode>(static_cast<unsigned char>(v[0])), v.substr(1));
}

namespace {
std::mutex cleanup_mutex;
std::set<std::string>& cleanup_paths() {
  static std::set<std::string> paths;
  return paths;
}
std::string& label() {
  static std::string l = "deltakit";
  return l;
}
}  // namespace

void set_error_label(const std::string& l) { label() = l; }
const std::string& error_label() { return label(); }

void register_cleanup(const std::string& path) {
  std::lock_guard<std::mutex> lock(cleanup_mutex);
  cleanup_paths().insert(path);
}

void unregister_cleanup(const std::string& path) {
  std::lock_guard<std::mutex> lock(cleanup_mutex);
  cleanup_paths().erase(path);
}

void run_cleanups() {
  std::lock_guard<std::mutex> lock(cleanup_mutex);
  for (const auto& p : cleanup_paths()) {
    // Other ranks may still be writing into the folder until the abort reaches them, and a
    // file they create while remove_all walks it makes the final rmdir fail. Renaming first
    // closes the folder to new files (their paths no longer resolve), so the walk converges.
    std::error_code ec;
    const std::string doomed = p + ".removing-" + std::to_string(::getpid());
    std::filesystem::rename(p, doomed, ec);
    if (ec) continue;  // gone already: another rank failed first and is removing it
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::filesystem::remove_all(doomed, ec);
      if (!ec && !std::filesystem::exists(doomed, ec)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  cleanup_paths().clear();
}

void independently(Comm& comm, const std::function<void()>& fn) {
  if (comm.size() == 1) return fn();
  try {
    fn();
  } catch (const std::exception& e) {
    abort_job(comm, e);
  }
}

void abort_job(Comm& comm, const std::exception& e) {
  // A registered folder already gone means another rank failed first and removed it; this
  // rank's error is a consequence, so stay quiet and let that rank's message stand alone.
  bool consequence = false;
  {
    std::lock_guard<std::mutex> lock(cleanup_mutex);
    for (const auto& p : cleanup_paths()) {
      std::error_code ec;
      if (!std::filesystem::exists(p, ec)) consequence = true;
    }
  }
  if (consequence) {
    // that rank is removing the folder under a ".removing-PID" name: an abort now would have
    // mpirun kill it mid-walk and leave the folder behind, so wait (a few seconds at most) for it
    const auto removing = [] {
      std::lock_guard<std::mutex> lock(cleanup_mutex);
      for (const auto& p : cleanup_paths()) {
        const std::filesystem::path path(p);
        const std::string prefix = path.filename().string() + ".removing-";
        std::error_code ec;
        const auto parent = path.parent_path().empty() ? std::filesystem::path(".") : path.parent_path();
        for (const auto& e : std::filesystem::directory_iterator(parent, ec))
          if (e.path().filename().string().rfind(prefix, 0) == 0) return true;
      }
      return false;
    };
    for (int wait = 0; wait < 250 && removing(); ++wait) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    comm.abort(1);
  }
  // print first: the abort below may take the other ranks (and their output) down at once
  print_error_line(error_label() + ": error (rank " + std::to_string(comm.rank()) + " of " +
                   std::to_string(comm.size()) + "): " + e.what());
  run_cleanups();
  comm.abort(1);
  std::_Exit(1);  // not reached (Comm::abort does not return); a virtual call's [[noreturn]] is not seen
}

}  // namespace deltakit
