// The CUDA backend's face in a build without it (DELTAKIT_CUDA=OFF, or no nvcc at configure
// time): every way in says so, naming the switch that would build it.
#include "src/core/error.h"
#include "src/gpu/cuda_device.h"

namespace deltakit::gpu {

namespace {
const char* kWhy =
    "this deltakit was built without CUDA (configure with -DDELTAKIT_CUDA=ON where nvcc is found; --device cpu "
    "runs everywhere)";
}

bool cuda_built() { return false; }
std::string cuda_unavailable() { return kWhy; }

struct CudaDevice::State {};
CudaDevice::CudaDevice(std::unique_ptr<State> s) : s_(std::move(s)) {}
CudaDevice::~CudaDevice() = default;
std::unique_ptr<CudaDevice> CudaDevice::open() { throw Error(ErrorCode::Device, "", kWhy); }
std::string CudaDevice::describe() const { return "no CUDA"; }
BitDeltaSums CudaDevice::bitdelta_sums(const PairView&, const BitDeltaLayout&, bool&) {
  throw Error(ErrorCode::Device, "", kWhy);
}
void CudaDevice::upload_pair(const PairView&, uint64_t) { throw Error(ErrorCode::Device, "", kWhy); }
BitDeltaSums CudaDevice::bitdelta_sums_resident(ElemType, const BitDeltaLayout&, bool&) {
  throw Error(ErrorCode::Device, "", kWhy);
}
DareKept CudaDevice::dare_kept(const PairView&, const DareDraw&, uint64_t, bool&) {
  throw Error(ErrorCode::Device, "", kWhy);
}
DareKept CudaDevice::dare_kept_resident(ElemType, const DareDraw&, uint64_t, bool&) {
  throw Error(ErrorCode::Device, "", kWhy);
}
QuantGroups CudaDevice::quant_groups(const PairView&, unsigned, uint64_t, uint64_t, bool&) {
  throw Error(ErrorCode::Device, "", kWhy);
}
QuantGroups CudaDevice::quant_groups_resident(ElemType, unsigned, uint64_t, uint64_t, bool&) {
  throw Error(ErrorCode::Device, "", kWhy);
}
void CudaDevice::quant_apply(ElemType, std::span<const uint8_t>, std::span<const uint8_t>, std::span<const float>,
                             std::span<const float>, uint64_t, unsigned, float, std::span<uint8_t>) {
  throw Error(ErrorCode::Device, "", kWhy);
}
void CudaDevice::dare_apply(ElemType, std::span<const uint8_t>, std::span<const uint64_t>, std::span<const uint8_t>,
                            float, std::span<uint8_t>) {
  throw Error(ErrorCode::Device, "", kWhy);
}
void CudaDevice::combine(const CombineEntryOptions&, std::span<const float>, const std::vector<std::span<const float>>&,
                         std::span<const double>, std::span<float>) {
  throw Error(ErrorCode::Device, "", kWhy);
}
double CudaDevice::h2d_seconds(std::span<const uint8_t>) { throw Error(ErrorCode::Device, "", kWhy); }
double CudaDevice::d2d_seconds(uint64_t) { throw Error(ErrorCode::Device, "", kWhy); }
void CudaDevice::bitdelta_apply(ElemType, std::span<const uint8_t>, std::span<const uint8_t>, std::span<const float>,
                                const UnitMap&, float, std::span<uint8_t>) {
  throw Error(ErrorCode::Device, "", kWhy);
}

}  // namespace deltakit::gpu
