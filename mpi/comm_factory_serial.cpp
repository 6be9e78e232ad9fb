// Builds without MPI: every job is one rank.
#include "src/core/comm.h"

namespace deltakit {

std::unique_ptr<Comm> make_world_comm(int*, char***) { return std::make_unique<SerialComm>(); }

}  // namespace deltakit
