#include "mpi/mpi_info.h"

namespace deltakit {

std::string mpi_library_version() { return "serial (built with DELTAKIT_MPI=OFF)"; }

}  // namespace deltakit
