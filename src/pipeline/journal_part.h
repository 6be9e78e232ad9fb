// A compress job's finished tensor in its journal ("t0000012.part"): the tensor's attributes,
// its report and its parts' chunks already through the adapter's filter pipeline, so rank 0's
// stitch only places them (AdapterWriter::add_tensor) — no HDF5 file per tensor built, flushed,
// reopened and walked.
//
//   0   "DKJPART1"
//   8   u64 header bytes H, u64 payload bytes P, u64 XXH3-64 of header and payload together
//   32  header: JSON {name, attrs (typed, below), report, base_fingerprint, parts: [{name, kind,
//       dims, chunk, encoding, zstd_level, chunks: [bytes of each]}]}
//   32+H  payload: every part's chunks, in order
//
// The file is renamed into the journal without an fsync: its checksum, not the disk's ordering,
// says it is whole. A crash that loses or tears it costs that tensor's redo on --resume
// (journal_part_whole), never a wrong adapter. Attribute values keep their JSON number kind
// (unsigned, signed, float), which decides the HDF5 attribute's type.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "formats/h5_chunks.h"
#include "src/core/mapped_file.h"

namespace deltakit {

struct JournalPart {
  std::string name;
  nlohmann::json attrs;
  std::string report;  // the tensor's CompressTensorReport as JSON text
  uint64_t base_fingerprint = 0;
};

// Writes the record to a temporary beside `path` and renames it into place (no fsync). Written
// around the page cache (FileIo::Direct): the stitch reads it once, later, and a record's bytes
// in fresh page-cache pages cost the encoder more than the disk's write does.
void write_journal_part(const std::string& path, const JournalPart& tensor, const std::vector<FilteredPart>& parts);

// A record as its writer held it: rank 0's stitch takes its own records from memory.
struct HeldRecord {
  JournalPart tensor;
  std::vector<FilteredPart> parts;
  uint64_t bytes() const;
};

// True if `path` holds a whole record (sizes and checksum); for --resume.
bool journal_part_whole(const std::string& path);

// A record opened for the stitch: every size checked against the file and the checksum verified
// (one read of the file), then its chunks read one at a time (or, for a record of up to 64 MB
// where O_DIRECT is allowed, the file read whole, once, around the page cache).
class JournalPartReader {
 public:
  explicit JournalPartReader(const std::string& path);
  JournalPartReader(const JournalPartReader&) = delete;
  JournalPartReader& operator=(const JournalPartReader&) = delete;
  const JournalPart& tensor() const { return tensor_; }
  // Each part's layout (FilteredPart with its `chunks` empty) and its chunks' sizes.
  const std::vector<FilteredPart>& layouts() const { return layouts_; }
  size_t chunk_count(size_t part) const { return sizes_[part].size(); }
  // Chunk c of part p; valid until the next call.
  std::span<const uint8_t> chunk(size_t part, size_t c);

 private:
  struct Free {
    uint64_t capacity;  // the buffer's bytes: it goes back to the thread's spare
    void operator()(uint8_t* p) const;
  };
  MappedFile file_;  // opened and read by pread, never mapped; closed however the constructor ends
  // the whole record, read around the page cache where it could be (one read, no page-cache
  // pages: another rank's records were written so and are read once); else read by pieces
  std::unique_ptr<uint8_t, Free> whole_{nullptr, Free{0}};
  JournalPart tensor_;
  std::vector<FilteredPart> layouts_;
  std::vector<std::vector<uint64_t>> sizes_, offsets_;  // per part, per chunk: bytes, file offset
  std::vector<uint8_t> buffer_;
};

}  // namespace deltakit
