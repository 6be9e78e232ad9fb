#include "formats/adapter_preflight.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <map>
#include <mutex>
#include <tuple>

#include "formats/adapter_h5.h"
#include "src/core/eintr.h"
#include "src/core/error.h"

namespace deltakit {

namespace {
constexpr unsigned kWalkSeconds = 5;  // metadata only: a real adapter's walk takes milliseconds
constexpr int kWalkDone = 0;

using Key = std::tuple<std::string, off_t, long, long>;  // path, size, mtime (s, ns)

// The outcome of a walk: nothing (the file is fine), the reader's refusal (an Error the child
// reports through a pipe, so the parent never runs HDF5's error paths, which leak), or a crash.
struct Verdict {
  bool refused = false;
  ErrorCode code = ErrorCode::AdapterInvalid;
  std::string where, message;
};

void write_all(int fd, const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = retry_eintr([&] { return ::write(fd, text.data() + done, text.size() - done); });
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// In the child: walk, report a refusal as "code\nwhere\nmessage", and leave without running any
// exit handler (MPI's, HDF5's).
[[noreturn]] void walk_and_exit(const std::string& path, int out) {
  ::signal(SIGALRM, SIG_DFL);  // the default action ends the child (a handler may be inherited,
  sigset_t alarm_only;         // and so may a mask that blocks it)
  sigemptyset(&alarm_only);
  sigaddset(&alarm_only, SIGALRM);
  ::sigprocmask(SIG_UNBLOCK, &alarm_only, nullptr);
  ::alarm(kWalkSeconds);
  // what HDF5 (or a sanitizer) prints while it fails on a bad file is not the user's message: the
  // parent says one line for the child, whatever it printed
  if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) ::dup2(null, STDERR_FILENO), ::close(null);
  try {
    AdapterReader r(path, AdapterReader::kTrusted);
    r.walk_every_dataset();
  } catch (const Error& e) {
    write_all(out, std::to_string(static_cast<int>(e.code())) + "\n" + e.where() + "\n" + e.message());
  } catch (const std::exception& e) {
    write_all(out, std::to_string(static_cast<int>(ErrorCode::AdapterInvalid)) + "\n" + path + "\n" +
                       "cannot be read: " + e.what());
  }
  ::_exit(kWalkDone);
}

Verdict walk_in_child(const std::string& path) {
  Verdict v;
  int fds[2];
  if (::pipe(fds) != 0) return v;  // cannot isolate (no descriptors left): parse in-process
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(fds[0]), ::close(fds[1]);
    return v;
  }
  if (child == 0) {
    ::close(fds[0]);
    walk_and_exit(path, fds[1]);
  }
  ::close(fds[1]);
  // the report ends when the child does; should its alarm not end it, the parent does
  std::string report;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kWalkSeconds + 5);
  bool hung = false;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd pfd{fds[0], POLLIN, 0};
    const int ready = left.count() > 0 ? ::poll(&pfd, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) {
      hung = true;
      ::kill(child, SIGKILL);
      break;
    }
    const ssize_t n = retry_eintr([&] { return ::read(fds[0], buf, sizeof buf); });
    if (n <= 0) break;
    report.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  if (retry_eintr([&] { return ::waitpid(child, &status, 0); }) < 0) return v;
  if (hung) status = SIGALRM;  // reported as the time limit below (a raw status of "killed by SIGALRM")
  v.refused = true;
  v.where = path;
  if (WIFEXITED(status) && WEXITSTATUS(status) == kWalkDone) {
    const size_t a = report.find('\n'), b = a == std::string::npos ? a : report.find('\n', a + 1);
    if (b == std::string::npos) return Verdict{};  // walked cleanly
    v.code = static_cast<ErrorCode>(std::atoi(report.substr(0, a).c_str()));
    v.where = report.substr(a + 1, b - a - 1);
    v.message = report.substr(b + 1);
    return v;
  }
  std::string why;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
    why = "HDF5 did not finish reading its structure in " + std::to_string(kWalkSeconds) + " s";
  else if (WIFSIGNALED(status))
    why = "HDF5 crashed reading its structure (signal " + std::to_string(WTERMSIG(status)) + ")";
  else
    why = "HDF5 failed reading its structure (exit " + std::to_string(WEXITSTATUS(status)) + ")";
  v.message = "the adapter is damaged or crafted: " + why;
  return v;
}
}  // namespace

void preflight_adapter(const std::string& path) {
  static std::mutex mutex;
  static std::map<Key, Verdict> verdicts;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;  // the reader reports it
  const Key key{path, st.st_size, static_cast<long>(st.st_mtim.tv_sec), st.st_mtim.tv_nsec};
  Verdict v;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = verdicts.find(key);
    v = it != verdicts.end() ? it->second : (verdicts[key] = walk_in_child(path));
  }
  if (v.refused) throw Error(v.code, v.where, v.message);
}

}  // namespace deltakit
