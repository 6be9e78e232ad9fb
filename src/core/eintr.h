// A system call interrupted by a signal (EINTR) is retried, never reported: a job on a cluster
// receives signals (Slurm's, a debugger's, a profiler's) that must not fail it.
#pragma once

#include <cerrno>

namespace deltakit {

// `call` returns -1 (a system call) or a negative id (an HDF5 call that opens a file) on failure.
template <class Call>
auto retry_eintr(Call call) {
  for (;;) {
    errno = 0;
    auto r = call();
    if (!(r < 0 && errno == EINTR)) return r;
  }
}

}  // namespace deltakit
