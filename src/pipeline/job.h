// The distributed job driver: the skeleton compress, apply and merge share, written once.
//
//   validate collectively (the caller, before the Job: every rank checks every header)
//   → identity (job.json: the command, the output, every option that changes it, the inputs)
//   → journal (a folder beside the output; finished items are files renamed into it; --resume)
//   → partition (the items not yet in the journal, spread over the ranks by bytes)
//   → items (each rank its own, independently: a failure aborts the job with its message),
//     with the progress line on rank 0 counting the journal's items
//   → barrier → commit on rank 0 (stitch an adapter, or complete and rename a checkpoint folder)
//   → barrier (no rank returns before the output is in place).
//
// A command is a spec: what its items are (journal file names and their bytes), how one is done,
// and how the finished journal becomes the output.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "src/core/comm.h"
#include "src/pipeline/journal.h"
#include "src/pipeline/progress.h"

namespace deltakit {

struct ShardPlan;

struct JobItem {
  std::string file;    // its file in the journal ("t0000012.h5", "model-00001-of-00003.safetensors")
  uint64_t bytes = 0;  // its weight: for the partition and the progress line
};

struct JobSpec {
  std::string command;  // "compress", "apply", "merge": the journal's tag and the progress label
  std::string out;
  bool resume = false;
  ProgressOptions progress;
  std::string unit;                      // what the progress line counts ("tensors", "shards")
  nlohmann::json identity;               // every option that changes the output (not threads or ranks)
  std::vector<std::string> input_files;  // their paths, sizes and times join the identity
  std::vector<JobItem> items;
  // checks an item file a resumed journal holds (JobJournal); empty: its presence says it is whole
  std::function<bool(const std::string& path)> item_whole;
};

class Job {
 public:
  // Collective: rank 0 makes the journal, or checks it against the identity with --resume.
  Job(Comm& comm, JobSpec spec);
  ~Job();
  // Items finished by an earlier run (--resume).
  uint64_t resumed() const { return spec_.items.size() - todo_.size(); }
  const JobJournal& journal() const { return *journal_; }

  // The independent phase: `before` (e.g. a model-wide selection every rank takes part in), then
  // `work(item, path)` for this rank's share of the items not yet done, then `after` (e.g. the
  // inputs' integrity check). Each item's file must be renamed into `path` once whole.
  // With workers > 1, that many threads take the rank's items, largest first, and `work` must
  // be safe to run at once for different items (HDF5 calls under h5_lock()); the first error
  // stops the others from starting new items and is rethrown once they have finished.
  void run_items(const std::function<void(size_t item, const std::string& path)>& work,
                 const std::function<void()>& before = {}, const std::function<void()>& after = {},
                 unsigned workers = 1);

  // After every rank's items: rank 0 ends the progress line and runs `make_output` on the full
  // journal (independently: a failure aborts the job); the other ranks let go of the journal.
  // Returns true on rank 0. Every rank returns only once the output is in place.
  bool commit(const std::function<void(JobJournal& journal)>& make_output);

 private:
  Comm& comm_;
  JobSpec spec_;
  std::unique_ptr<JobJournal> journal_;
  std::unique_ptr<ProgressReporter> progress_;
  std::vector<size_t> todo_;
};

// The items of a checkpoint-writing job (apply, merge): the output's shards.
std::vector<JobItem> shard_items(const ShardPlan& plan);
// Its output: the shard index and what `finish_folder` adds (side files) are written into the
// journal, which is then renamed into place as the checkpoint folder.
void make_checkpoint_folder(JobJournal& journal, const ShardPlan& plan, const std::function<void()>& finish_folder);

}  // namespace deltakit
