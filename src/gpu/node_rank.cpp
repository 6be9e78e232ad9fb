#include <cstdlib>

#include "src/gpu/cuda_device.h"

namespace deltakit::gpu {

int node_local_rank() {
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"})
    if (const char* v = std::getenv(var); v && *v) return std::atoi(v);
  return 0;
}

}  // namespace deltakit::gpu
