// Outputs that are either complete or absent. A file is written under a temporary name in the
// same folder, fsynced, renamed over the final name and the folder fsynced; a folder output is
// built under a temporary folder and renamed into place the same way. Destructors of unfinished
// outputs delete the temporaries, so an interrupted or failed run leaves nothing that looks
// complete at the final path.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace deltakit {

// Refuse to write `out` if it is one of the inputs or (without overwrite) already exists.
// Throws Error(OutputConflict).
// With make_parent, a missing parent folder is created (after every other check) instead of refused.
void check_output_path(const std::string& out, std::span<const std::string> inputs, bool overwrite,
                       bool make_parent = false);
// The same for an output that is one file: an existing folder there is refused now (--overwrite
// replaces files only), not at the final rename after the whole job.
void check_output_file_path(const std::string& out, std::span<const std::string> inputs, bool overwrite);

void fsync_directory(const std::string& dir);

// Removes the temporaries in `dir` (".LEAF.deltakit-tmp-PID-N") whose writing process is gone:
// what a killed job left behind. Temporaries of live processes are kept.
void remove_dead_temporaries(const std::string& dir);

// A small file written whole through an AtomicFile (configs, indexes, CSVs).
void write_file_atomically(const std::string& path, std::string_view contents);

class DirectWriter;

// How a large output's bytes reach the file: through the page cache, or (where the file system
// takes O_DIRECT and DELTAKIT_DIRECT_IO is not 0) around it, a thread writing behind the caller
// (src/core/direct_writer.h): for outputs of model size, written in order.
enum class FileIo { Buffered, Direct };

class AtomicFile {
 public:
  explicit AtomicFile(std::string final_path, FileIo io = FileIo::Buffered);
  // The temporary in `temp_folder` (on the output's file system) rather than beside the output:
  // a job's journal folder, which an aborted job's ranks remove whichever rank fails.
  AtomicFile(std::string final_path, FileIo io, const std::string& temp_folder);
  ~AtomicFile();  // removes the temporary unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write_zeros(size_t n);
  // Overwrite bytes already written (e.g. a header reserved at the start).
  void write_at(uint64_t offset, const void* data, size_t n);
  // Flush buffered bytes so the temporary file can be read back.
  void flush() {
    end_direct();
    flush_buffer();
  }
  uint64_t bytes_written() const { return written_; }
  // Reads back bytes already written (ends direct writing: for a rare read of the output).
  void read_back(uint64_t offset, void* data, size_t n);
  // Sets the file's length (ends direct writing).
  void resize(uint64_t size);
  // Whether writes still go around the page cache.
  bool writes_direct() const { return direct_ != nullptr; }
  // fsync, close, rename into place, fsync the folder. With sync false only close and rename:
  // for a file whose contents carry their own checksum (a journal record), which a crash may
  // lose or tear but never pass off as whole.
  void commit(bool sync = true);
  const std::string& final_path() const { return final_; }
  const std::string& temp_path() const { return temp_; }

 private:
  void flush_buffer();
  void write_all(const char* p, size_t n);
  void end_direct();  // what the direct writer holds on the file; ordinary writes from here
  std::string final_, temp_;
  int fd_ = -1;
  std::unique_ptr<DirectWriter> direct_;
  uint64_t written_ = 0;
  std::string buffer_;  // writes are batched so small header pieces don't each cost a syscall
  bool committed_ = false;
};

// A folder output: files go into temp_dir(); commit() renames it to the final path (replacing
// an existing folder only when overwrite was allowed, via a rename-aside so the old one is
// never half-replaced).
class AtomicDirectory {
 public:
  explicit AtomicDirectory(std::string final_path);
  // Adopt `temp_path` (made by the caller) as the temporary: a resumable job's journal folder.
  // It is kept if this object dies uncommitted, until remove_on_failure(true).
  AtomicDirectory(std::string final_path, std::string temp_path);
  ~AtomicDirectory();
  void remove_on_failure(bool remove) { keep_ = !remove; }
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;

  const std::string& temp_dir() const { return temp_; }
  void commit();

 private:
  std::string final_, temp_;
  bool committed_ = false, keep_ = false;
};

// A temporary sibling name for `final_path` that is the same on every rank and every run
// ("." + leaf + ".deltakit-" + tag): where a resumable job keeps its journal.
std::string stable_sibling(const std::string& final_path, const std::string& tag);

}  // namespace deltakit
