// The "all" error path of src/core/comm.h: a phase every rank runs, whose failure on any rank
// becomes the same AgreedError on every rank (the lowest failing rank's message), so the job
// stops cleanly with one message instead of hanging in the next collective.
#pragma once

#include <functional>

#include "src/core/comm.h"
#include "src/core/error.h"

namespace deltakit {

class AgreedError : public Error {
 public:
  AgreedError(ErrorCode code, const std::string& message) : Error(code, "", message) {}
};

// Runs fn on every rank, then agrees: if fn threw Error anywhere, every rank throws AgreedError.
void collectively(Comm& comm, const std::function<void()>& fn);

// The "one" path, for a phase where ranks work independently: runs fn; an Error on this rank is
// printed at once ("<label>: error (rank r of n): ..."), the registered temporaries are
// removed, and the whole job is aborted with exit code 1. With one rank the Error is rethrown.
void independently(Comm& comm, const std::function<void()>& fn);

// Error::one itself: prints "<label>: error (rank r of n): <what>" (unless another rank already
// failed and removed the job's temporaries), removes the registered temporaries, aborts the job.
[[noreturn]] void abort_job(Comm& comm, const std::exception& e);

// What errors are prefixed with ("deltakit compress"); set once by main.
void set_error_label(const std::string& label);
const std::string& error_label();

// Folders and files a job must not leave behind if it is aborted (not for normal unwinding:
// owners clean up after themselves there).
void register_cleanup(const std::string& path);
void unregister_cleanup(const std::string& path);
void run_cleanups();

}  // namespace deltakit
