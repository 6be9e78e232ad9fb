// The zstd HDF5 filter class (id 32015). Level in cd_values[0] as the standard plugin reads it;
// cd_values[1] (added at dataset creation) is the chunk's byte size, required when decoding.
#pragma once

#include <hdf5.h>

namespace deltakit {

constexpr H5Z_filter_t kZstdFilterId = 32015;
extern const H5Z_class2_t kZstdFilterClass;

}  // namespace deltakit
