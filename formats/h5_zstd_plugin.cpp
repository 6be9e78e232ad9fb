// An HDF5 dynamic filter plugin exposing deltakit's zstd filter (id 32015), so that h5py, h5dump
// or h5ls -d can read adapter payloads: HDF5_PLUGIN_PATH=<build>/formats h5dump ... . It links no
// HDF5 library itself; HDF5 symbols resolve to the host program's.
#include <H5PLextern.h>

#include "formats/h5_zstd_filter.h"

extern "C" H5PL_type_t H5PLget_plugin_type(void) { return H5PL_TYPE_FILTER; }
extern "C" const void* H5PLget_plugin_info(void) { return &deltakit::kZstdFilterClass; }
