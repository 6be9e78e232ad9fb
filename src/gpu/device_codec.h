// The codec steps a GPU takes over where it has a kernel for them, the CPU's everywhere else:
// the caller names a device (or none) and gets what the CPU codec would give, byte for byte.
#pragma once

#include <span>

#include "src/codec/codec.h"
#include "src/gpu/cuda_device.h"

namespace deltakit::gpu {

// Where a job computes (`--device cpu|cuda`).
enum class Device { Cpu, Cuda };
Device parse_device(const std::string& name);  // throws Error(Usage) for another name
// The device a job asked for, opened: nullptr for the CPU; throws Error(Device) saying why a GPU
// cannot be used.
std::unique_ptr<CudaDevice> open_device(Device d);

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
