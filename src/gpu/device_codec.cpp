#include "src/gpu/device_codec.h"

#include <algorithm>
#include <stdexcept>

#include "src/codec/bitdelta.h"
#include "src/codec/quant.h"
#include "src/codec/stage.h"
#include "src/core/error.h"
#include "src/gpu/host_reference.h"

namespace deltakit::gpu {

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::Cpu;
  if (name == "cuda") return Device::Cuda;
  throw Error(ErrorCode::Usage, "", "--device must be cpu or cuda, not \"" + name + "\"");
}

std::unique_ptr<CudaDevice> open_device(Device d) { return d == Device::Cuda ? CudaDevice::open() : nullptr; }

DevicePool::DevicePool(Device d) {
  if (d != Device::Cuda) return;
  for (unsigned k = 0; k < kWorkersPerGpu; ++k) free_.push_back(CudaDevice::open());
  size_ = free_.size();
}

DevicePool::Lease DevicePool::take() {
  if (!size_) return {nullptr, nullptr};
  std::lock_guard<std::mutex> lock(mutex_);
  if (free_.empty()) throw std::logic_error("DevicePool::take: more workers than devices");
  std::unique_ptr<CudaDevice> dev = std::move(free_.back());
  free_.pop_back();
  return {this, std::move(dev)};
}

void DevicePool::give_back(std::unique_ptr<CudaDevice> dev) {
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(std::move(dev));
}

namespace {
// DARE alone on the device: what it kept, coded into the adapter's parts on the host.
PreparedDelta prepare_dare_on(CudaDevice& dev, const DareParams& prm, const Recipe& r, const TensorView& base,
                              const TensorView& ft) {
  PreparedDelta p = compare_pair(r, base, ft);
  if (!p.lossy(r)) return p;
  const uint64_t n = ft.numel();
  bool nonfinite = false;
  DareKept kept = dev.dare_kept(pair_view(base, ft), dare_draw(prm, ft.name), n, nonfinite);
  if (nonfinite)
    p.fallback = kNonFiniteDelta;
  else
    p.stream = dare_encoder_from_kept(prm, ft.dtype, n, std::move(kept));
  return p;
}

// Quant alone on the device: the groups' ranges, codes and error, stored on the host.
PreparedDelta prepare_quant_on(CudaDevice& dev, const QuantParams& prm, const Recipe& r, const TensorView& base,
                               const TensorView& ft) {
  PreparedDelta p = compare_pair(r, base, ft);
  if (!p.lossy(r)) return p;
  const uint64_t n = ft.numel();
  bool nonfinite = false;
  QuantGroups groups = dev.quant_groups(pair_view(base, ft), prm.bits, prm.group, n, nonfinite);
  if (nonfinite)
    p.fallback = kNonFiniteDelta;
  else
    p.stream = quant_encoder_from_groups(prm, n, std::move(groups));
  return p;
}
}  // namespace

PreparedDelta prepare_delta_on(CudaDevice* dev, const Recipe& r, const TensorView& base, const TensorView& ft) {
  const bool device_pass = dev && dtype_is_float_decodable(ft.dtype) && ft.numel() > 0;
  if (const std::optional<DareParams> dare = dare_alone(r); device_pass && dare)
    return prepare_dare_on(*dev, *dare, r, base, ft);
  if (const std::optional<QuantParams> quant = quant_alone(r); device_pass && quant)
    return prepare_quant_on(*dev, *quant, r, base, ft);
  const std::optional<BitDeltaParams> prm = one_level_bitdelta(r);
  if (!dev || !prm || !dtype_is_float_decodable(ft.dtype) || ft.numel() == 0) return prepare_delta(r, base, ft);
  PreparedDelta p = compare_pair(r, base, ft);
  if (!p.lossy(r)) return p;
  const uint64_t n = ft.numel(), cols = ft.shape.empty() ? 1 : ft.shape.back();
  const BitDeltaLayout layout = bitdelta_layout(*prm, n / cols, cols);
  bool nonfinite = false;
  BitDeltaSums sums = dev->bitdelta_sums(pair_view(base, ft), layout, nonfinite);
  if (nonfinite)
    p.fallback = kNonFiniteDelta;
  else
    p.stream = bitdelta_encoder_from_sums(*prm, layout, std::move(sums));
  return p;
}

void decode_add_on(CudaDevice* dev, const StoredTensor& st, const TensorView& base, float alpha,
                   std::span<uint8_t> out) {
  const uint64_t n = base.numel(), cols = base.shape.empty() ? 1 : base.shape.back();
  std::optional<OneLevelBitDelta> b;
  if (dev && dtype_is_float_decodable(base.dtype) && n > 0 && cols > 0) {
    if (std::optional<StoredDare> d = stored_dare_alone({st.attrs, st.where}, st.src, n, base.dtype))
      return dev->dare_apply(elem_type(base.dtype), base.bytes, d->positions, d->values, alpha, out);
    if (std::optional<StoredQuant> q = stored_quant_alone({st.attrs, st.where}, st.src, n))
      return dev->quant_apply(elem_type(base.dtype), base.bytes, q->codes, q->mins, q->steps, q->group, q->bits, alpha,
                              out);
    b = stored_one_level_bitdelta({st.attrs, st.where}, st.src, n / cols, cols);
  }
  if (!b) return decode_add_stored(st, base, alpha, out);
  dev->bitdelta_apply(elem_type(base.dtype), base.bytes, b->signs, b->scales, unit_map_of(*b, cols), alpha, out);
}

}  // namespace deltakit::gpu
