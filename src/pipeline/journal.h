// A resumable job's journal: a folder beside the output (".<out>.deltakit-<tag>") where each
// finished work item is a file renamed into place once complete (so its presence means it is
// whole), plus job.json naming the job. A killed job leaves the folder; started again with
// --resume and the same arguments, it skips the items present. Without --resume an existing
// journal is refused rather than silently mixed in. On failure (an Error, a full disk) the
// folder is removed unless --resume was given, so nothing is left behind.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "src/core/atomic_output.h"
#include "src/core/comm.h"

namespace deltakit {

// Path, size and modification time of each file: the part of a job's identity (job.json) that
// says whether its inputs changed since the journal was made.
nlohmann::json describe_input_files(const std::vector<std::string>& paths);

class JobJournal {
 public:
  // Collective (call inside collectively()). `job` is a text that changes whenever the output
  // would (inputs' headers and sizes, options); rank 0 creates or checks the folder.
  // `whole(path)`, where given, checks each item a resumed journal holds (a record renamed in
  // without an fsync may be torn by a crash): one that fails is removed and done again.
  JobJournal(Comm& comm, const std::string& out, const std::string& tag, const std::string& job, bool resume,
             const std::function<bool(const std::string& path)>& whole = {});
  ~JobJournal();
  const std::string& dir() const { return dir_.temp_dir(); }
  std::string item_path(const std::string& item) const { return dir() + "/" + item; }
  // Items complete before this run started (rank 0's listing, the same on every rank).
  const std::set<std::string>& done_at_start() const { return done_; }
  // Items complete now (this rank's listing; for progress).
  std::set<std::string> list() const;
  // The folder becomes the output (apply) after job.json is removed.
  void commit_as_output();
  // Non-root ranks at the end of a successful job: the folder is rank 0's to commit or remove.
  void disown();
  // The folder is no longer needed (compress, after the adapter is in place).
  void remove();

 private:
  AtomicDirectory dir_;
  std::set<std::string> done_;
  bool resume_;
};

}  // namespace deltakit
