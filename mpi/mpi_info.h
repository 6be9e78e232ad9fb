// What parallel runtime this build has: "serial" or the MPI library's own version string.
#pragma once

#include <string>

namespace deltakit {

std::string mpi_library_version();

}  // namespace deltakit
