// The GPU this process computes on (`--device cuda`). Built from cuda_device.cu where nvcc was
// found (DELTAKIT_CUDA), from cuda_device_nocuda.cpp otherwise, whose open() explains why there is
// none; everything else in src/gpu is plain C++ and builds everywhere.
//
// Each call takes host bytes, copies them to buffers the device keeps (grown, never shrunk, so
// a job allocates once per size) and returns host results: the statistics a pass needs, or the
// output tensor's bytes. The CPU codec stays the reference: tests compare every result with it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "src/codec/bitdelta_layout.h"
#include "src/codec/device_pass.h"
#include "src/gpu/pair_lanes.h"
#include "src/merge/combine_entry.h"

namespace deltakit::gpu {

// Whether this build has the CUDA backend.
bool cuda_built();
// "" if a GPU can be used now, else why not (no CUDA in this build, no driver, no device).
std::string cuda_unavailable();
// The node-local rank (Open MPI, Slurm, MPICH), 0 outside a launcher: a rank's GPU is this modulo
// the node's GPUs.
int node_local_rank();

class CudaDevice {
 public:
  // The GPU of this node-local rank; throws Error(Device) saying why none can be used.
  static std::unique_ptr<CudaDevice> open();
  ~CudaDevice();
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  std::string describe() const;  // "NVIDIA H200, sm_90, 140 GB, GPU 0 of 1"

  // One-level BitDelta's statistics of the pair's n entries (bitdelta_sums_reference's result,
  // bit for bit); `nonfinite` says whether an entry of δ was NaN/Inf.
  BitDeltaSums bitdelta_sums(const PairView& pair, const BitDeltaLayout& layout, bool& nonfinite);
  // The same in two steps, for inputs already on the device (bench/bench_gpu times each):
  // the pair's bytes copied there and kept, then the statistics of the pair last uploaded.
  void upload_pair(const PairView& pair, uint64_t n);
  BitDeltaSums bitdelta_sums_resident(ElemType t, const BitDeltaLayout& layout, bool& nonfinite);
  // base + α·δ̂ for one-level BitDelta (bitdelta_apply_reference's result, bit for bit).
  void bitdelta_apply(ElemType t, std::span<const uint8_t> base, std::span<const uint8_t> signs,
                      std::span<const float> scales, const UnitMap& units, float alpha, std::span<uint8_t> out);

  // DARE alone's pass over the pair's n entries (dare_kept_reference's result, bit for bit).
  DareKept dare_kept(const PairView& pair, const DareDraw& draw, uint64_t n, bool& nonfinite);
  // The same over the pair last uploaded (upload_pair).
  DareKept dare_kept_resident(ElemType t, const DareDraw& draw, uint64_t n, bool& nonfinite);

  // Quant alone's pass over the pair's n entries, groups of `group` (quant_groups_reference's).
  QuantGroups quant_groups(const PairView& pair, unsigned bits, uint64_t group, uint64_t n, bool& nonfinite);
  QuantGroups quant_groups_resident(ElemType t, unsigned bits, uint64_t group, uint64_t n, bool& nonfinite);
  // base + α·δ̂ for quant's stored codes, mins and steps (quant_apply_reference's result).
  void quant_apply(ElemType t, std::span<const uint8_t> base, std::span<const uint8_t> codes,
                   std::span<const float> mins, std::span<const float> steps, uint64_t group, unsigned bits,
                   float alpha, std::span<uint8_t> out);
  // base + α·δ̂ for DARE alone's stored positions and values (dare_apply_reference's result).
  void dare_apply(ElemType t, std::span<const uint8_t> base, std::span<const uint64_t> positions,
                  std::span<const uint8_t> values, float alpha, std::span<uint8_t> out);

  // A merge's mix (combine_task_vectors, src/merge/methods.h): each task vector weighed (v·float(w)),
  // then combine_entry per entry (combine_reference's result, bit for bit).
  void combine(const CombineEntryOptions& o, std::span<const float> base, const std::vector<std::span<const float>>& tv,
               std::span<const double> weights, std::span<float> out);

  // The ceilings the bench holds the kernels against, cudaEvent-timed: one host→device copy of
  // these bytes, and one device→device copy of this many bytes (seconds).
  double h2d_seconds(std::span<const uint8_t> host);
  double d2d_seconds(uint64_t bytes);

 private:
  struct State;
  explicit CudaDevice(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

}  // namespace deltakit::gpu
