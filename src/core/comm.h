// The ranks of a job, as the pipeline sees them. The pipeline never includes <mpi.h>: it talks
// to a Comm, which is either the serial one (one rank) or MPI's (mpi/comm_mpi.cpp), chosen at
// start-up by make_world_comm(). Every call below is collective unless it says otherwise.
//
// Errors follow LAMMPS's two paths:
//   * all:  every rank reaches the same verdict (argument checks, headers, the plan); wrap that
//           phase in collectively() so that every rank throws the same Error and rank 0 alone
//           prints it; the job ends cleanly with exit code 1 or 2.
//   * one:  a rank alone sees a problem while ranks work independently (a bad tensor, a full
//           disk). It prints its own message and calls abort(), which ends every rank at once
//           (MPI_Abort); there is no collective to hang in.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace deltakit {

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual void barrier() = 0;
  // Element-wise sums over ranks, in place on every rank.
  virtual void allreduce_sum(std::span<uint64_t> v) = 0;
  virtual void allreduce_sum(std::span<double> v) = 0;
  // Every rank's bytes, in rank order, on every rank.
  virtual std::vector<std::string> allgather(const std::string& bytes) = 0;
  // `bytes` of `root` on every rank.
  virtual void broadcast(std::string& bytes, int root) = 0;
  // Not collective: end every rank of the job now with `code` (after the caller printed why).
  [[noreturn]] virtual void abort(int code) = 0;
  // "serial" or the MPI library's name.
  virtual std::string describe() const = 0;

  bool is_root() const { return rank() == 0; }
};

// One rank, no communication.
class SerialComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void barrier() override {}
  void allreduce_sum(std::span<uint64_t>) override {}
  void allreduce_sum(std::span<double>) override {}
  std::vector<std::string> allgather(const std::string& bytes) override { return {bytes}; }
  void broadcast(std::string&, int) override {}
  [[noreturn]] void abort(int code) override;
  std::string describe() const override { return "serial"; }
};

// MPI's world when the process was started by a launcher (mpirun, mpiexec, srun) and the build
// has MPI; otherwise a SerialComm. MPI is initialised here and finalised by the destructor.
std::unique_ptr<Comm> make_world_comm(int* argc, char*** argv);

// True when this process was started by an MPI launcher (its environment says so).
bool launched_by_mpi();

// Worker threads per rank when the user asked for "all cores": the cores shared among the
// ranks the launcher put on this node (Open MPI, MPICH, PMIx and Slurm say how many), and no
// more than the CPUs this process may run on (mpirun binds each rank to one core by default).
unsigned default_threads_per_rank(const Comm& comm);
// The CPUs this process may run on (its affinity mask; hardware_concurrency where unknown).
unsigned usable_cpus();
// "" or a warning that `threads` threads will share fewer CPUs than that because a launcher bound
// the process to part of the machine, naming the way out.
std::string threads_warning(unsigned threads);

}  // namespace deltakit
