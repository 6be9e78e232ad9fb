#include "src/pipeline/job.h"

#include <algorithm>
#include <map>

#include "formats/checkpoint.h"
#include "src/core/collective.h"
#include "src/core/parallel.h"
#include "src/pipeline/partition.h"

namespace deltakit {

Job::Job(Comm& comm, JobSpec spec) : comm_(comm), spec_(std::move(spec)) {
  nlohmann::json id = nlohmann::json::object();
  id["command"] = spec_.command;
  id["out"] = spec_.out;
  for (const auto& [k, v] : spec_.identity.items()) id[k] = v;
  id["inputs"] = describe_input_files(spec_.input_files);
  journal_ =
      std::make_unique<JobJournal>(comm_, spec_.out, spec_.command, id.dump(1) + "\n", spec_.resume, spec_.item_whole);
  for (size_t i = 0; i < spec_.items.size(); ++i)
    if (!journal_->done_at_start().count(spec_.items[i].file)) todo_.push_back(i);
}

Job::~Job() = default;

void Job::run_items(const std::function<void(size_t, const std::string&)>& work, const std::function<void()>& before,
                    const std::function<void()>& after, unsigned workers) {
  if (before) independently(comm_, before);
  std::vector<uint64_t> todo_bytes;
  uint64_t total_bytes = 0;
  std::map<std::string, size_t> index;  // journal file -> item, for the progress count
  for (size_t i : todo_) todo_bytes.push_back(spec_.items[i].bytes);
  for (size_t i = 0; i < spec_.items.size(); ++i) total_bytes += spec_.items[i].bytes, index[spec_.items[i].file] = i;
  auto mine = items_of(partition_by_bytes(todo_bytes, comm_.size()), comm_.rank());
  progress_ = std::make_unique<ProgressReporter>(
      spec_.progress, spec_.command, spec_.unit, spec_.items.size(), total_bytes,
      [this, index] {
        ProgressCount c;
        for (const auto& file : journal_->list())
          if (auto it = index.find(file); it != index.end()) ++c.items, c.bytes += spec_.items[it->second].bytes;
        return c;
      },
      comm_.is_root());
  auto do_item = [&](size_t j) { work(todo_[j], journal_->item_path(spec_.items[todo_[j]].file)); };
  workers = static_cast<unsigned>(std::min<size_t>(std::max(workers, 1u), mine.size()));
  // largest first: a worker that draws the widest tensor last would leave the others idle
  if (workers > 1)
    std::stable_sort(mine.begin(), mine.end(), [&](size_t a, size_t b) { return todo_bytes[a] > todo_bytes[b]; });
  independently(comm_, [&] {
    try {
      // one item per block: the first error stops new items and is rethrown after the others
      parallel_blocks(mine.size(), 1, workers, [&](uint64_t k, uint64_t, uint64_t) { do_item(mine[k]); });
    } catch (const Error&) {
      // an input truncated under us reads as zeros (the SIGBUS guard), which may fail a check
      // first (a fingerprint): the integrity check names the real cause
      if (after) after();
      throw;
    }
    if (after) after();
  });
}

bool Job::commit(const std::function<void(JobJournal&)>& make_output) {
  comm_.barrier();  // every item is in the journal
  const bool root = comm_.is_root();
  if (root) {
    if (progress_) progress_->finish();
    independently(comm_, [&] { make_output(*journal_); });
  } else {
    journal_->disown();
  }
  comm_.barrier();  // no rank returns before the output is in place
  return root;
}

std::vector<JobItem> shard_items(const ShardPlan& plan) {
  std::vector<JobItem> items;
  for (size_t s = 0; s < plan.shards.size(); ++s) items.push_back({plan.name(s), plan.bytes[s]});
  return items;
}

void make_checkpoint_folder(JobJournal& journal, const ShardPlan& plan, const std::function<void()>& finish_folder) {
  write_shard_index(journal.dir(), plan);
  finish_folder();
  journal.commit_as_output();
}

}  // namespace deltakit
