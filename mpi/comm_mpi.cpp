// The MPI communicator: the only place besides mpi_info.cpp that includes <mpi.h>.
#include <mpi.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "src/core/comm.h"
#include "src/core/error.h"

namespace deltakit {

namespace {

// MPI's default handler aborts the job on an error; a library set to return codes ends up here
void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw Error(ErrorCode::Io, "MPI", std::string(what) + " failed: " + std::string(text, static_cast<size_t>(len)));
}

// Open MPI opens its Omni-Path and libfabric transports (MTLs psm, psm2, ofi) at start-up, and
// those libraries' constructors spend about 0.2 s (CPU-affinity probes and waits) even where no
// such hardware is: a third of a small job under mpirun. With no RDMA device on the machine
// (/sys/class/infiniband absent or empty) and no MTL chosen by the user, leave them out; shared
// memory and TCP carry the job as before. Other MPIs ignore the variable.
void skip_absent_fabrics() {
  if (std::getenv("OMPI_MCA_mtl")) return;
  std::error_code ec;
  const std::filesystem::path rdma = "/sys/class/infiniband";
  if (std::filesystem::exists(rdma, ec) && !std::filesystem::is_empty(rdma, ec)) return;
  setenv("OMPI_MCA_mtl", "^psm,psm2,ofi", 0);
}

class MpiComm final : public Comm {
 public:
  MpiComm(int* argc, char*** argv) {
    skip_absent_fabrics();
    int provided = 0;
    // only the main thread calls MPI; worker and progress threads never do
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // Waits without spinning: Open MPI's MPI_Barrier polls, so a rank done early kept its core busy
  // while the threads still at work wanted it (rank 0's stitch beside the last items; on a machine
  // with as many ranks as cores, another rank). A poll every 200 µs adds at most that to a barrier.
  void barrier() override {
    MPI_Request req;
    check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "MPI_Ibarrier");
    for (int polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) return;
      if (polls >= 64) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  void allreduce_sum(std::span<uint64_t> v) override {
    static_assert(sizeof(unsigned long long) == sizeof(uint64_t));
    reduce(v.data(), v.size(), MPI_UNSIGNED_LONG_LONG);
  }
  void allreduce_sum(std::span<double> v) override { reduce(v.data(), v.size(), MPI_DOUBLE); }
  std::vector<std::string> allgather(const std::string& bytes) override {
    int n = static_cast<int>(bytes.size());
    if (bytes.size() > static_cast<size_t>(INT32_MAX))
      throw Error(ErrorCode::Overflow, "MPI", "allgather: over 2 GiB (the MPI layer moves at most 2 GiB per call)");
    std::vector<int> sizes(size_), displs(size_);
    check(MPI_Allgather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
    long long total = 0;
    for (int r = 0; r < size_; ++r) displs[r] = static_cast<int>(total), total += sizes[r];
    if (total > INT32_MAX)
      throw Error(ErrorCode::Overflow, "MPI",
                  "allgather: over 2 GiB in all (the MPI layer moves at most 2 GiB per call)");
    std::string all(static_cast<size_t>(total), '\0');
    check(MPI_Allgatherv(bytes.data(), n, MPI_BYTE, all.data(), sizes.data(), displs.data(), MPI_BYTE, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::vector<std::string> out(size_);
    for (int r = 0; r < size_; ++r) out[r] = all.substr(displs[r], sizes[r]);
    return out;
  }
  void broadcast(std::string& bytes, int root) override {
    unsigned long long n = bytes.size();
    check(MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, MPI_COMM_WORLD), "MPI_Bcast");
    if (n > static_cast<unsigned long long>(INT32_MAX))
      throw Error(ErrorCode::Overflow, "MPI", "broadcast: over 2 GiB (the MPI layer moves at most 2 GiB per call)");
    bytes.resize(n);
    check(MPI_Bcast(bytes.data(), static_cast<int>(n), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
  [[noreturn]] void abort(int code) override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);  // MPI_Abort does not return; this satisfies [[noreturn]]
  }
  std::string describe() const override { return "MPI, " + std::to_string(size_) + " ranks"; }

 private:
  void reduce(void* data, size_t n, MPI_Datatype t) {
    // in chunks: MPI counts are int
    const size_t step = 1 << 28;
    const size_t esize = t == MPI_DOUBLE ? sizeof(double) : sizeof(uint64_t);
    for (size_t off = 0; off < n; off += step) {
      int k = static_cast<int>(std::min(step, n - off));
      check(MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + off * esize, k, t, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    }
  }
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_world_comm(int* argc, char*** argv) {
  if (!launched_by_mpi()) return std::make_unique<SerialComm>();
  return std::make_unique<MpiComm>(argc, argv);
}

}  // namespace deltakit
