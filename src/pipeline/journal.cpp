#include "src/pipeline/journal.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "formats/checkpoint.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/pipeline/partition.h"

namespace deltakit {

namespace fs = std::filesystem;

namespace {

constexpr const char* kJobFile = "job.json";

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

nlohmann::json describe_input_files(const std::vector<std::string>& paths) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& p : paths) {
    std::error_code ec;
    auto t = fs::last_write_time(p, ec).time_since_epoch().count();
    files.push_back({{"path", p}, {"bytes", fs::file_size(p, ec)}, {"mtime", t}});
  }
  return files;
}

JobJournal::JobJournal(Comm& comm, const std::string& out, const std::string& tag, const std::string& job, bool resume,
                       const std::function<bool(const std::string&)>& whole)
    : dir_(out, stable_sibling(out, tag)), resume_(resume) {
  const std::string folder = dir_.temp_dir();
  std::string listing;
  collectively(comm, [&] {
    if (!comm.is_root()) return;
    std::error_code ec;
    bool exists = fs::exists(folder, ec);
    if (exists && !fs::exists(folder + "/" + kJobFile, ec)) {
      // killed between creating the folder and writing job.json: nothing was done, start again
      fs::remove_all(folder, ec);
      exists = false;
    }
    // temporaries of killed runs: of the output itself (compress's stitch) and of journal items
    remove_dead_temporaries(fs::path(out).parent_path().string());
    if (exists) remove_dead_temporaries(folder);
    if (exists && !resume)
      throw Error(ErrorCode::OutputConflict, out,
                  "an interrupted run left its journal " + folder +
                      "; pass --resume to continue it, or delete that folder to start again");
    if (exists && read_text(folder + "/" + kJobFile) != job)
      throw Error(ErrorCode::OutputConflict, out,
                  "the journal " + folder + " belongs to a job with other inputs or options; delete it to start again");
    if (!exists) {
      fs::create_directory(folder, ec);
      if (ec) throw Error(ErrorCode::Io, out, "cannot create the journal folder " + folder + ": " + ec.message());
      try {
        write_file_atomically(folder + "/" + kJobFile, job);
      } catch (...) {
        fs::remove_all(folder, ec);  // nothing done yet: leave nothing
        throw;
      }
    }
    for (const auto& item : list()) {
      if (exists && whole && !whole(folder + "/" + item)) {
        fs::remove(folder + "/" + item, ec);
        continue;
      }
      listing += item + "\n";
    }
  });  // the folder exists for every rank from here
  comm.broadcast(listing, 0);
  std::istringstream ls(listing);
  for (std::string item; std::getline(ls, item);) done_.insert(item);
  // rank 0 owns the folder; an aborted job's ranks remove it through the cleanup registry
  if (!resume_) {
    dir_.remove_on_failure(comm.is_root());
    register_cleanup(folder);
  }
}

JobJournal::~JobJournal() { unregister_cleanup(dir_.temp_dir()); }

std::set<std::string> JobJournal::list() const {
  std::set<std::string> items;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir(), ec)) {
    std::string name = e.path().filename().string();
    if (name != kJobFile && name[0] != '.') items.insert(name);  // '.': temporaries being written
  }
  return items;
}

void JobJournal::disown() { dir_.remove_on_failure(false); }

void JobJournal::commit_as_output() {
  std::error_code ec;
  fs::remove(dir() + "/" + kJobFile, ec);
  dir_.commit();
}

void JobJournal::remove() {
  std::error_code ec;
  fs::remove_all(dir(), ec);
  dir_.remove_on_failure(false);  // nothing left to remove
}

}  // namespace deltakit
