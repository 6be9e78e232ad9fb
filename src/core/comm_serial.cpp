#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <thread>

#include "src/core/comm.h"

namespace deltakit {

void SerialComm::abort(int code) { std::_Exit(code); }

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx (srun --mpi=pmix, prterun) and PMI-1/2 launchers (MPICH, srun)
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

unsigned usable_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return static_cast<unsigned>(CPU_COUNT(&set));
  const unsigned hw = std::thread::hardware_concurrency();
  return hw ? hw : 1;
}

std::string threads_warning(unsigned threads) {
  // only where a launcher bound the process below the machine's cores (asking for more threads
  // than the machine has is the user's own choice)
  const unsigned cpus = usable_cpus(), hw = std::thread::hardware_concurrency();
  if (threads <= cpus || cpus >= hw) return "";
  return std::to_string(threads) + " threads share the " + std::to_string(cpus) +
         " CPU(s) this process is bound to; under mpirun give each rank its cores (--map-by slot:PE=" +
         std::to_string(threads) + ", or --bind-to none)";
}

unsigned default_threads_per_rank(const Comm& comm) {
  unsigned hw = std::thread::hardware_concurrency();
  if (!hw) hw = 1;
  unsigned local = comm.size() > 1 ? static_cast<unsigned>(comm.size()) : 1;
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PMIX_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"})
    if (const char* e = std::getenv(v)) {
      unsigned n = static_cast<unsigned>(std::strtoul(e, nullptr, 10));
      if (n) {
        local = n;
        break;
      }
    }
  return std::max(1u, std::min(hw / local, usable_cpus()));
}

}  // namespace deltakit
