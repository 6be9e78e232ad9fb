// HDF5 1.10 is not hardened against crafted files: a mutated adapter can make its link iteration,
// attribute or chunk-index code read out of bounds, free twice or loop forever. deltakit cannot
// fix the library, so before a process trusts an adapter, a forked child walks its metadata
// first (every link, attribute, dataset header and chunk index, as AdapterReader and apply would)
// under a time limit. If the
// child dies by a signal, a sanitizer or the limit, the file is refused with one clear error; if
// the walk refuses it (an Error), the parent throws that same Error. Either way the parent never
// runs HDF5 over a file the library chokes on, nor down its error paths (which leak). Verdicts
// are cached per path, size and modification time.
#pragma once

#include <string>

namespace deltakit {

// Throws the walk's Error, or Error(AdapterInvalid, path, ...) if HDF5 crashes or hangs on the file.
void preflight_adapter(const std::string& path);

}  // namespace deltakit
