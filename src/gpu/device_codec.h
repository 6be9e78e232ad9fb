// The codec steps a GPU takes over where it has a kernel for them, the CPU's everywhere else:
// the caller names a device (or none) and gets what the CPU codec would give, byte for byte.
#pragma once

#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "src/codec/codec.h"
#include "src/gpu/cuda_device.h"

namespace deltakit::gpu {

// Where a job computes (`--device cpu|cuda`).
enum class Device { Cpu, Cuda };
Device parse_device(const std::string& name);  // throws Error(Usage) for another name

// One CudaDevice per worker of a job, each with its own stream and buffers, so that on one GPU a
// worker's copies overlap another's kernels. A worker takes one for as long as it computes and
// gives it back; a pool for the CPU is empty and hands out nullptr.
class DevicePool {
 public:
  static constexpr unsigned kWorkersPerGpu = 2;
  // kWorkersPerGpu devices for --device cuda (throws Error(Device) saying why a GPU cannot be
  // used), none for the CPU; a job runs at most that many workers on them.
  explicit DevicePool(Device d);
  bool gpu() const { return size_ > 0; }

  class Lease {
   public:
    Lease(DevicePool* pool, std::unique_ptr<CudaDevice> dev) : pool_(pool), dev_(std::move(dev)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (pool_ && dev_) pool_->give_back(std::move(dev_));
    }
    CudaDevice* get() const { return dev_.get(); }

   private:
    DevicePool* pool_;
    std::unique_ptr<CudaDevice> dev_;
  };
  // A device no other worker holds (nullptr for the CPU); at most `workers` leases at once.
  Lease take();

 private:
  void give_back(std::unique_ptr<CudaDevice> dev);
  std::mutex mutex_;
  std::vector<std::unique_ptr<CudaDevice>> free_;
  size_t size_ = 0;
};

// prepare_delta (src/codec/codec.h) with the fused pass computed on `dev` for a one-level
// BitDelta recipe (its statistics) or DARE alone (the kept entries and the error) over an F32,
// BF16 or F16 tensor; any other recipe, and dev == nullptr, runs on the CPU. encode_streamed then
// finishes on the host, to the same bytes.
PreparedDelta prepare_delta_on(CudaDevice* dev, const Recipe& r, const TensorView& base, const TensorView& ft);

// decode_add_stored (src/codec/codec.h) on `dev` for a tensor stored as one-level BitDelta or
// DARE alone over a float base; any other tensor, and dev == nullptr, on the CPU. The same
// output bytes.
void decode_add_on(CudaDevice* dev, const StoredTensor& st, const TensorView& base, float alpha,
                   std::span<uint8_t> out);

}  // namespace deltakit::gpu
