// An HDF5 file driver that writes the adapter's chunks around the page cache.
//
// HDF5's POSIX driver writes every byte through the page cache; on these VMs each fresh
// page-cache page is a hypervisor fault, and an adapter's payload (tens to hundreds of MB)
// costs the stitch more in those faults than in anything else. This driver hands HDF5's raw
// data (the chunks: H5FD_MEM_DRAW), which HDF5 writes in increasing order at the end of the
// file, to an AtomicFile opened with FileIo::Direct (src/core/direct_writer.h); the gaps it
// skips are written as zeros. Everything else (superblock, object headers, chunk indexes, heaps
// — kilobytes per tensor) and any raw write below the end already streamed is kept in memory,
// in write order, and laid over the file when HDF5 closes it. A read (rare: HDF5 reading back
// what it wrote) sees the same bytes the file will hold: the streamed part read back (which
// ends direct writing) with the kept writes laid over it.
//
// The file is an ordinary HDF5 file: the driver stores nothing in the superblock and allocates
// as the POSIX driver does (the same feature flags and free-list map), so the bytes are those
// the POSIX driver would write.
#pragma once

#include <hdf5.h>

namespace deltakit {

class AtomicFile;

// Sets `fapl` to write through `file` (which must outlive the HDF5 file). The name given to
// H5Fcreate is then only a label. Returns false if the driver could not be registered.
bool h5_use_direct_driver(hid_t fapl, AtomicFile& file);

}  // namespace deltakit
