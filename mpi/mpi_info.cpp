#include "mpi/mpi_info.h"

#include <mpi.h>

namespace deltakit {

std::string mpi_library_version() {
  char buf[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(buf, &len);  // callable before MPI_Init
  std::string s(buf, static_cast<size_t>(len));
  auto nl = s.find_first_of("\r\n,");
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace deltakit
