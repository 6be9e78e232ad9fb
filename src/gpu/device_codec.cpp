#include "src/gpu/device_codec.h"

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
// A device's fused pass after the CPU's comparison: `pass` runs it and returns the encoder of
// its results, setting its flag where δ had a NaN/Inf entry (then raw stands in, as on the CPU).
template <class Pass>
PreparedDelta on_device(const Recipe& r, const TensorView& base, const TensorView& ft, Pass pass) {
  PreparedDelta p = compare_pair(r, base, ft);
  if (!p.lossy(r)) return p;
  bool nonfinite = false;
  std::unique_ptr<BlockEncoder> enc = pass(nonfinite);
  if (nonfinite)
    p.fallback = kNonFiniteDelta;
  else
    p.stream = std::move(enc);
  return p;
}
}  // namespace

PreparedDelta prepare_delta_on(CudaDevice* dev, const Recipe& r, const TensorView& base, const TensorView& ft) {
  if (!dev || !dtype_is_float_decodable(ft.dtype) || ft.numel() == 0) return prepare_delta(r, base, ft);
  const uint64_t n = ft.numel(), cols = ft.shape.empty() ? 1 : ft.shape.back();
  const PairView pair = pair_view(base, ft);
  if (const std::optional<DareParams> dare = dare_alone(r))  // the kept entries and the error
    return on_device(r, base, ft, [&](bool& bad) {
      return dare_encoder_from_kept(*dare, ft.dtype, n, dev->dare_kept(pair, dare_draw(*dare, ft.name), n, bad));
    });
  if (const std::optional<QuantParams> quant = quant_alone(r))  // the groups' ranges, codes and error
    return on_device(r, base, ft, [&](bool& bad) {
      return quant_encoder_from_groups(*quant, n, dev->quant_groups(pair, quant->bits, quant->group, n, bad));
    });
  if (const std::optional<BitDeltaParams> prm = one_level_bitdelta(r)) {  // the statistics
    const BitDeltaLayout layout = bitdelta_layout(*prm, n / cols, cols);
    return on_device(r, base, ft, [&](bool& bad) {
      return bitdelta_encoder_from_sums(*prm, layout, dev->bitdelta_sums(pair, layout, bad));
    });
  }
  return prepare_delta(r, base, ft);
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
