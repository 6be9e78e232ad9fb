// Small files read whole (configs, tokenizers, texts, side files). Untrusted paths may name a FIFO,
// a device or /dev/zero: the file is opened without blocking, must be a regular file, and must fit
// the cap, so a named pipe cannot hang a job and an endless file cannot grow memory without bound.
// Errors are Error(Io) naming the file and what it was meant to be.
#pragma once

#include <cstdint>
#include <string>

namespace deltakit {

inline constexpr uint64_t kWholeFileCap = uint64_t{256} << 20;  // 256 MiB

std::string read_whole_file(const std::string& path, const std::string& what, uint64_t cap = kWholeFileCap);

// Throws Error(Io) unless `path` is a regular file (for readers that open it themselves: HDF5).
void require_regular_file(const std::string& path, const std::string& what);

}  // namespace deltakit
