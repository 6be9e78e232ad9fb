// The CUDA backend: the kernels of the fused BitDelta, DARE and quant passes and of their apply,
// each thread running one of pair_lanes.h's functions over its slice, so a kernel returns what
// host_reference.cpp computes on the CPU, bit for bit (nvcc runs with -fmad=false).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <cub/device/device_scan.cuh>
#include <string>
#include <vector>

#include "src/core/error.h"
#include "src/gpu/cuda_device.h"

namespace deltakit::gpu {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(ErrorCode::Device, "", std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

// A device buffer that grows to the largest size asked and is kept for the next tensor.
class DeviceBuffer {
 public:
  ~DeviceBuffer() {
    if (p_) cudaFree(p_);
  }
  void* get(size_t bytes) {
    if (bytes > size_) {
      if (p_) check(cudaFree(p_), "cudaFree");
      p_ = nullptr, size_ = 0;
      check(cudaMalloc(&p_, std::max<size_t>(bytes, 256)), "cudaMalloc");
      size_ = bytes;
    }
    return p_;
  }
  template <class T>
  T* as(size_t count) {
    return static_cast<T*>(get(count * sizeof(T)));
  }

 private:
  void* p_ = nullptr;
  size_t size_ = 0;
};

constexpr unsigned kThreads = 256;

unsigned blocks_for(uint64_t threads) { return static_cast<unsigned>((threads + kThreads - 1) / kThreads); }

// The lane sums of pair_lanes.h, as the kernel below takes them.
struct AbsLanes {
  using T = float;
  __device__ float operator()(const PairView& p, uint64_t first, uint64_t len, unsigned lane, unsigned lanes) const {
    return abs_lane(p, first, len, lane, lanes);
  }
};
struct SqLanes {
  using T = double;
  __device__ double operator()(const PairView& p, uint64_t first, uint64_t len, unsigned lane, unsigned lanes) const {
    return sq_lane(p, first, len, lane, lanes);
  }
};

// A thread per (slice, lane) — slices are BitDeltaLayout's runs or pieces — kThreads / Lanes
// slices per block; the slice's lane 0 adds its lanes in order.
template <unsigned Lanes, class LaneSum>
__global__ void slice_sums_kernel(PairView p, const uint64_t* starts, uint64_t count, typename LaneSum::T* out) {
  using T = typename LaneSum::T;
  __shared__ T lane_sum[kThreads];
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t r = t / Lanes;
  const unsigned lane = static_cast<unsigned>(t % Lanes);
  lane_sum[threadIdx.x] = r < count ? LaneSum()(p, starts[r], starts[r + 1] - starts[r], lane, Lanes) : T(0);
  __syncthreads();
  if (r < count && lane == 0) out[r] = add_lanes(&lane_sum[threadIdx.x], Lanes);
}

// A thread per 32-entry word of sign bits.
__global__ void signs_kernel(PairView p, uint64_t n, uint32_t* words, unsigned* nonfinite) {
  const uint64_t w = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (32 * w >= n) return;
  bool bad = false;
  words[w] = sign_word(p, w, n, bad);
  if (bad) atomicOr(nonfinite, 1u);
}

// A thread per entry.
__global__ void bitdelta_apply_kernel(ElemType t, const uint8_t* base, const uint8_t* signs, const float* scales,
                                      UnitMap units, float alpha, uint64_t n, uint8_t* out) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) store_elem(t, out, i, bitdelta_applied(t, base, signs, scales[unit_of(units, i)], alpha, i));
}

// DARE: a thread per 32-entry word, its keep bits and their count.
__global__ void dare_keep_kernel(PairView p, DareDraw d, uint64_t n, uint32_t* bits, uint64_t* counts,
                                 unsigned* nonfinite) {
  const uint64_t w = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (32 * w >= n) return;
  bool bad = false;
  bits[w] = dare_keep_word(p, d, w, n, bad);
  counts[w] = static_cast<uint64_t>(__popc(bits[w]));
  if (bad) atomicOr(nonfinite, 1u);
}

// A thread per word: its kept entries into their slots (the counts' exclusive scan).
__global__ void dare_compact_kernel(PairView p, DareDraw d, uint64_t words, const uint32_t* bits, const uint64_t* slot,
                                    uint64_t* positions, uint8_t* values) {
  const uint64_t w = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (w < words) dare_compact_word(p, d, w, bits[w], slot[w], positions, values);
}

// The error lanes of pair_lanes.h, as piece_error_kernel takes them.
struct DareErrorLane {
  PairView p;
  DareDraw d;
  __device__ void operator()(uint64_t first, uint64_t len, unsigned lane, double& err, double& sq) const {
    dare_error_lane(p, d, first, len, lane, err, sq);
  }
};
struct QuantErrorLane {
  PairView p;
  const float *lo, *step;
  uint64_t group;
  unsigned bits;
  __device__ void operator()(uint64_t first, uint64_t len, unsigned lane, double& err, double& sq) const {
    quant_error_lane(p, lo, step, group, bits, first, len, lane, err, sq);
  }
};

// A thread per (piece, lane), kThreads / kErrLanes pieces per block; lane 0 adds the piece's lanes.
template <class ErrorLane>
__global__ void piece_error_kernel(ErrorLane lane_sums, uint64_t n, uint64_t pieces, double* err_out, double* sq_out) {
  __shared__ double err[kThreads], sq[kThreads];
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const uint64_t q = t / kErrLanes;
  const unsigned lane = static_cast<unsigned>(t % kErrLanes);
  err[threadIdx.x] = sq[threadIdx.x] = 0.0;
  if (q < pieces) {
    const uint64_t first = q * kErrPiece;
    lane_sums(first, n - first < kErrPiece ? n - first : kErrPiece, lane, err[threadIdx.x], sq[threadIdx.x]);
  }
  __syncthreads();
  if (q < pieces && lane == 0) {
    err_out[q] = add_lanes(&err[threadIdx.x], kErrLanes);
    sq_out[q] = add_lanes(&sq[threadIdx.x], kErrLanes);
  }
}

// Quant: a thread per group, its range and packed codes.
__global__ void quant_group_kernel(PairView p, uint64_t n, uint64_t group, unsigned bits, uint64_t groups, float* lo,
                                   float* step, uint8_t* codes, unsigned* nonfinite) {
  const uint64_t g = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g >= groups) return;
  const uint64_t first = g * group;
  bool bad = false;
  quant_group(p, first, n - first < group ? n - first : group, bits, lo[g], step[g], codes + first * bits / 8, bad);
  if (bad) atomicOr(nonfinite, 1u);
}

// A thread per entry.
__global__ void quant_apply_kernel(ElemType t, const uint8_t* base, const uint8_t* codes, const float* lo,
                                   const float* step, uint64_t group, unsigned bits, float alpha, uint64_t n,
                                   uint8_t* out) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) store_elem(t, out, i, quant_applied(t, base, codes, lo, step, group, bits, alpha, i));
}

// A thread per kept entry: its stored value, as a float, at its position of the dense δ̂.
__global__ void scatter_kernel(ElemType t, const uint64_t* positions, const uint8_t* values, uint64_t count,
                               float* dense) {
  const uint64_t j = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j < count) dense[positions[j]] = load_elem(t, values, j);
}

// A thread per entry.
__global__ void sparse_apply_kernel(ElemType t, const uint8_t* base, const float* dense, float alpha, uint64_t n,
                                    uint8_t* out) {
  const uint64_t i = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) store_elem(t, out, i, sparse_applied(t, base, dense, alpha, i));
}

// Merge: a thread per (model, entry) weighs it, then a thread per entry mixes.
__global__ void weigh_kernel(float* tv, uint64_t len, unsigned m, const double* weights) {
  const uint64_t t = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t < len * m) tv[t] *= static_cast<float>(weights[t / len]);
}
__global__ void combine_kernel(CombineEntryOptions o, const float* base, const float* tv, uint64_t len, unsigned m,
                               const double* weights, float* out) {
  const uint64_t j = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j < len) out[j] = combine_entry(o, base[j], tv, len, m, weights, j);
}

}  // namespace

// A device's state for one worker: its own stream (so that two workers' copies and kernels on
// one GPU overlap), its buffers, and two pinned staging halves for host->device copies.
struct CudaDevice::State {
  static constexpr size_t kStage = size_t{8} << 20;
  int device = 0, count = 0;
  cudaDeviceProp prop{};
  cudaStream_t stream = nullptr;
  uint8_t* pinned[2] = {nullptr, nullptr};
  cudaEvent_t staged[2] = {nullptr, nullptr};
  ~State() {
    if (stream) cudaStreamDestroy(stream);
    for (int k = 0; k < 2; ++k) {
      if (pinned[k]) cudaFreeHost(pinned[k]);
      if (staged[k]) cudaEventDestroy(staged[k]);
    }
  }
  void start() {
    check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
    for (int k = 0; k < 2; ++k) {
      check(cudaHostAlloc(reinterpret_cast<void**>(&pinned[k]), kStage, cudaHostAllocDefault), "cudaHostAlloc");
      check(cudaEventCreateWithFlags(&staged[k], cudaEventDisableTiming), "cudaEventCreate");
    }
  }
  // The calling thread's current device is this one (a worker thread starts on device 0).
  void bind() const { check(cudaSetDevice(device), "cudaSetDevice"); }
  // Host bytes to the device through the pinned halves: a chunk is copied into one half while the
  // other half's DMA runs; a half is refilled only once its last DMA is done.
  void to_device(void* dst, const void* src, size_t bytes, const char* what) {
    auto* d = static_cast<uint8_t*>(dst);
    const auto* h = static_cast<const uint8_t*>(src);
    unsigned k = 0;
    for (size_t off = 0; off < bytes; off += kStage, k ^= 1u) {
      const size_t m = std::min(kStage, bytes - off);
      check(cudaEventSynchronize(staged[k]), what);
      std::memcpy(pinned[k], h + off, m);
      check(cudaMemcpyAsync(d + off, pinned[k], m, cudaMemcpyHostToDevice, stream), what);
      check(cudaEventRecord(staged[k], stream), what);
    }
  }
  // A pass's per-piece error sums (err_sq then delta_sq, `pieces` each) to the host.
  void pieces_to_host(const double* piece, uint64_t pieces, std::vector<double>& err, std::vector<double>& sq) {
    err.resize(pieces), sq.resize(pieces);
    to_host(err.data(), piece, pieces * 8, "copy the error sums");
    to_host(sq.data(), piece + pieces, pieces * 8, "copy the delta sums");
  }
  // The non-finite flag, cleared on the stream before a pass's kernels.
  unsigned* cleared_flag() {
    unsigned* f = flag.as<unsigned>(1);
    check(cudaMemsetAsync(f, 0, sizeof(unsigned), stream), "cudaMemsetAsync");
    return f;
  }
  // Whether a kernel set the non-finite flag.
  bool flag_set(const unsigned* f) {
    unsigned bad = 0;
    to_host(&bad, f, sizeof bad, "copy the finite flag");
    return bad != 0;
  }
  // Device bytes to the host, after everything queued before them on the stream.
  void to_host(void* dst, const void* src, size_t bytes, const char* what) {
    if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), what);
    check(cudaStreamSynchronize(stream), what);
  }
  DeviceBuffer base, ft, runs, pieces, run_abs, piece_sq, words, flag, scales, out;
  DeviceBuffer counts, slots, scan_temp, positions, values, piece_err;
};

bool cuda_built() { return true; }

std::string cuda_unavailable() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) return std::string("no usable GPU: ") + cudaGetErrorString(e);
  if (count == 0) return "no usable GPU: the CUDA driver sees no device";
  return "";
}

CudaDevice::CudaDevice(std::unique_ptr<State> s) : s_(std::move(s)) {}
CudaDevice::~CudaDevice() = default;

std::unique_ptr<CudaDevice> CudaDevice::open() {
  if (std::string why = cuda_unavailable(); !why.empty()) throw Error(ErrorCode::Device, "", "--device cuda: " + why);
  auto s = std::make_unique<State>();
  check(cudaGetDeviceCount(&s->count), "cudaGetDeviceCount");
  s->device = node_local_rank() % s->count;
  check(cudaSetDevice(s->device), "cudaSetDevice");
  check(cudaGetDeviceProperties(&s->prop, s->device), "cudaGetDeviceProperties");
  s->start();
  return std::unique_ptr<CudaDevice>(new CudaDevice(std::move(s)));
}

std::string CudaDevice::describe() const {
  return std::string(s_->prop.name) + ", sm_" + std::to_string(s_->prop.major) + std::to_string(s_->prop.minor) + ", " +
         std::to_string(s_->prop.totalGlobalMem >> 30) + " GiB, GPU " + std::to_string(s_->device) + " of " +
         std::to_string(s_->count);
}

void CudaDevice::upload_pair(const PairView& pair, uint64_t n) {
  s_->bind();
  State& s = *s_;
  const size_t bytes = n * elem_bytes(pair.type);
  s.to_device(s.base.as<uint8_t>(bytes), pair.base, bytes, "copy base");
  s.to_device(s.ft.as<uint8_t>(bytes), pair.ft, bytes, "copy fine-tune");
}

BitDeltaSums CudaDevice::bitdelta_sums(const PairView& pair, const BitDeltaLayout& l, bool& nonfinite) {
  upload_pair(pair, l.n);
  return bitdelta_sums_resident(pair.type, l, nonfinite);
}

BitDeltaSums CudaDevice::bitdelta_sums_resident(ElemType type, const BitDeltaLayout& l, bool& nonfinite) {
  s_->bind();
  State& s = *s_;
  const size_t bytes = l.n * elem_bytes(type);
  const uint64_t R = l.runs.size() - 1, Q = l.pieces.size() - 1, words = (l.n + 31) / 32;
  const PairView dev{s.base.as<uint8_t>(bytes), s.ft.as<uint8_t>(bytes), type};
  uint64_t* runs = s.runs.as<uint64_t>(R + 1);
  uint64_t* pieces = s.pieces.as<uint64_t>(Q + 1);
  float* run_abs = s.run_abs.as<float>(R);
  double* piece_sq = s.piece_sq.as<double>(Q);
  uint32_t* word_bits = s.words.as<uint32_t>(words);
  s.to_device(runs, l.runs.data(), (R + 1) * 8, "copy runs");
  s.to_device(pieces, l.pieces.data(), (Q + 1) * 8, "copy pieces");
  unsigned* flag = s.cleared_flag();
  constexpr unsigned A = BitDeltaLayout::kAbsLanes, S = BitDeltaLayout::kSqLanes;
  static_assert(kThreads % A == 0 && kThreads % S == 0);
  if (R) slice_sums_kernel<A, AbsLanes><<<blocks_for(R * A), kThreads, 0, s.stream>>>(dev, runs, R, run_abs);
  if (Q) slice_sums_kernel<S, SqLanes><<<blocks_for(Q * S), kThreads, 0, s.stream>>>(dev, pieces, Q, piece_sq);
  if (words) signs_kernel<<<blocks_for(words), kThreads, 0, s.stream>>>(dev, l.n, word_bits, flag);
  check(cudaGetLastError(), "launching the BitDelta kernels");
  BitDeltaSums out;
  out.run_abs.resize(R);
  out.piece_sq.resize(Q);
  out.signs.resize(4 * words);
  s.to_host(out.run_abs.data(), run_abs, R * 4, "copy run sums");
  s.to_host(out.piece_sq.data(), piece_sq, Q * 8, "copy piece sums");
  s.to_host(out.signs.data(), word_bits, words * 4, "copy sign bits");
  nonfinite = s.flag_set(flag);
  out.signs.resize((l.n + 7) / 8);  // the words' bytes are the packed stream, LSB first
  return out;
}

DareKept CudaDevice::dare_kept(const PairView& pair, const DareDraw& draw, uint64_t n, bool& nonfinite) {
  upload_pair(pair, n);
  return dare_kept_resident(pair.type, draw, n, nonfinite);
}

DareKept CudaDevice::dare_kept_resident(ElemType type, const DareDraw& draw, uint64_t n, bool& nonfinite) {
  s_->bind();
  State& s = *s_;
  const size_t bytes = n * elem_bytes(type);
  const uint64_t words = (n + 31) / 32, pieces = (n + kErrPiece - 1) / kErrPiece;
  const PairView dev{s.base.as<uint8_t>(bytes), s.ft.as<uint8_t>(bytes), type};
  uint32_t* bits = s.words.as<uint32_t>(words);
  uint64_t* counts = s.counts.as<uint64_t>(words);
  uint64_t* slots = s.slots.as<uint64_t>(words);
  double* piece = s.piece_err.as<double>(2 * pieces);
  unsigned* flag = s.cleared_flag();
  DareKept k;
  if (words) {
    dare_keep_kernel<<<blocks_for(words), kThreads, 0, s.stream>>>(dev, draw, n, bits, counts, flag);
    size_t temp = 0;
    check(cub::DeviceScan::ExclusiveSum(nullptr, temp, counts, slots, words, s.stream), "sizing the scan");
    check(
        cub::DeviceScan::ExclusiveSum(s.scan_temp.get(std::max<size_t>(temp, 1)), temp, counts, slots, words, s.stream),
        "scanning the counts");
    uint64_t last_slot = 0, last_count = 0;
    s.to_host(&last_slot, slots + words - 1, 8, "copy the last slot");
    s.to_host(&last_count, counts + words - 1, 8, "copy the last count");
    const uint64_t kept = last_slot + last_count;
    uint64_t* positions = s.positions.as<uint64_t>(kept);
    uint8_t* values = s.values.as<uint8_t>(kept * elem_bytes(type));
    dare_compact_kernel<<<blocks_for(words), kThreads, 0, s.stream>>>(dev, draw, words, bits, slots, positions, values);
    piece_error_kernel<<<blocks_for(pieces * kErrLanes), kThreads, 0, s.stream>>>(DareErrorLane{dev, draw}, n, pieces,
                                                                                  piece, piece + pieces);
    check(cudaGetLastError(), "launching the DARE kernels");
    k.positions.resize(kept);
    k.values.resize(kept * elem_bytes(type));
    if (kept) {  // (p = 1 keeps none: no buffer to copy from)
      s.to_host(k.positions.data(), positions, kept * 8, "copy the kept positions");
      s.to_host(k.values.data(), values, k.values.size(), "copy the kept values");
    }
    s.pieces_to_host(piece, pieces, k.piece_err_sq, k.piece_delta_sq);
  }
  nonfinite = s.flag_set(flag);
  return k;
}

QuantGroups CudaDevice::quant_groups(const PairView& pair, unsigned bits, uint64_t group, uint64_t n, bool& nonfinite) {
  upload_pair(pair, n);
  return quant_groups_resident(pair.type, bits, group, n, nonfinite);
}

QuantGroups CudaDevice::quant_groups_resident(ElemType type, unsigned bits, uint64_t group, uint64_t n,
                                              bool& nonfinite) {
  s_->bind();
  State& s = *s_;
  const size_t bytes = n * elem_bytes(type);
  const uint64_t groups = (n + group - 1) / group, pieces = (n + kErrPiece - 1) / kErrPiece;
  const uint64_t code_bytes = (n * bits + 7) / 8;
  const PairView dev{s.base.as<uint8_t>(bytes), s.ft.as<uint8_t>(bytes), type};
  float* lo = s.scales.as<float>(2 * groups);
  float* step = lo + groups;
  uint8_t* codes = s.values.as<uint8_t>(code_bytes);
  double* piece = s.piece_err.as<double>(2 * pieces);
  unsigned* flag = s.cleared_flag();
  QuantGroups q;
  if (n) {
    quant_group_kernel<<<blocks_for(groups), kThreads, 0, s.stream>>>(dev, n, group, bits, groups, lo, step, codes,
                                                                      flag);
    piece_error_kernel<<<blocks_for(pieces * kErrLanes), kThreads, 0, s.stream>>>(
        QuantErrorLane{dev, lo, step, group, bits}, n, pieces, piece, piece + pieces);
    check(cudaGetLastError(), "launching the quant kernels");
    q.codes.resize(code_bytes);
    q.mins.resize(groups), q.steps.resize(groups);
    s.to_host(q.codes.data(), codes, code_bytes, "copy the codes");
    s.to_host(q.mins.data(), lo, groups * 4, "copy the mins");
    s.to_host(q.steps.data(), step, groups * 4, "copy the steps");
    s.pieces_to_host(piece, pieces, q.piece_err_sq, q.piece_delta_sq);
  }
  nonfinite = s.flag_set(flag);
  return q;
}

void CudaDevice::quant_apply(ElemType t, std::span<const uint8_t> base, std::span<const uint8_t> codes,
                             std::span<const float> mins, std::span<const float> steps, uint64_t group, unsigned bits,
                             float alpha, std::span<uint8_t> out) {
  s_->bind();
  State& s = *s_;
  const uint64_t n = out.size() / elem_bytes(t), groups = mins.size();
  uint8_t* dbase = s.base.as<uint8_t>(base.size());
  uint8_t* dcodes = s.values.as<uint8_t>(codes.size());
  float* lo = s.scales.as<float>(2 * groups);
  uint8_t* dout = s.out.as<uint8_t>(out.size());
  s.to_device(dbase, base.data(), base.size(), "copy base");
  s.to_device(dcodes, codes.data(), codes.size(), "copy the codes");
  s.to_device(lo, mins.data(), groups * 4, "copy the mins");
  s.to_device(lo + groups, steps.data(), groups * 4, "copy the steps");
  if (n)
    quant_apply_kernel<<<blocks_for(n), kThreads, 0, s.stream>>>(t, dbase, dcodes, lo, lo + groups, group, bits, alpha,
                                                                 n, dout);
  check(cudaGetLastError(), "launching the quant apply kernel");
  s.to_host(out.data(), dout, out.size(), "copy the output");
}

void CudaDevice::combine(const CombineEntryOptions& o, std::span<const float> base,
                         const std::vector<std::span<const float>>& tv, std::span<const double> weights,
                         std::span<float> out) {
  s_->bind();
  State& s = *s_;
  const uint64_t len = out.size();
  const unsigned m = static_cast<unsigned>(tv.size());
  float* dbase = s.base.as<float>(len);
  float* dtv = s.ft.as<float>(len * m);
  double* dweights = s.piece_err.as<double>(m);
  float* dout = s.out.as<float>(len);
  s.to_device(dbase, base.data(), len * 4, "copy base");
  for (unsigned k = 0; k < m; ++k) s.to_device(dtv + k * len, tv[k].data(), len * 4, "copy a task vector");
  s.to_device(dweights, weights.data(), m * 8, "copy the weights");
  if (len && m) weigh_kernel<<<blocks_for(len * m), kThreads, 0, s.stream>>>(dtv, len, m, dweights);
  if (len) combine_kernel<<<blocks_for(len), kThreads, 0, s.stream>>>(o, dbase, dtv, len, m, dweights, dout);
  check(cudaGetLastError(), "launching the merge kernels");
  s.to_host(out.data(), dout, len * 4, "copy the merged entries");
}

void CudaDevice::dare_apply(ElemType t, std::span<const uint8_t> base, std::span<const uint64_t> positions,
                            std::span<const uint8_t> values, float alpha, std::span<uint8_t> out) {
  s_->bind();
  State& s = *s_;
  const uint64_t n = out.size() / elem_bytes(t), count = positions.size();
  uint8_t* dbase = s.base.as<uint8_t>(base.size());
  uint64_t* dpos = s.positions.as<uint64_t>(count);
  uint8_t* dvals = s.values.as<uint8_t>(values.size());
  float* dense = s.ft.as<float>(n);
  uint8_t* dout = s.out.as<uint8_t>(out.size());
  s.to_device(dbase, base.data(), base.size(), "copy base");
  if (count) {
    s.to_device(dpos, positions.data(), count * 8, "copy the positions");
    s.to_device(dvals, values.data(), values.size(), "copy the values");
  }
  check(cudaMemsetAsync(dense, 0, n * 4, s.stream), "cudaMemsetAsync");
  if (count) scatter_kernel<<<blocks_for(count), kThreads, 0, s.stream>>>(t, dpos, dvals, count, dense);
  if (n) sparse_apply_kernel<<<blocks_for(n), kThreads, 0, s.stream>>>(t, dbase, dense, alpha, n, dout);
  check(cudaGetLastError(), "launching the DARE apply kernels");
  s.to_host(out.data(), dout, out.size(), "copy the output");
}

namespace {
// Seconds of one call of `copy` between two recorded events.
template <class Copy>
double event_seconds(Copy copy) {
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  check(cudaEventRecord(start), "cudaEventRecord");
  copy();
  check(cudaEventRecord(stop), "cudaEventRecord");
  check(cudaEventSynchronize(stop), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 1e3;
}
}  // namespace

double CudaDevice::h2d_seconds(std::span<const uint8_t> host) {
  s_->bind();
  uint8_t* dst = s_->out.as<uint8_t>(host.size());
  return event_seconds(
      [&] { check(cudaMemcpy(dst, host.data(), host.size(), cudaMemcpyHostToDevice), "copy to the device"); });
}

double CudaDevice::d2d_seconds(uint64_t bytes) {
  s_->bind();
  uint8_t* src = s_->base.as<uint8_t>(bytes);
  uint8_t* dst = s_->out.as<uint8_t>(bytes);
  return event_seconds([&] { check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "copy on the device"); });
}

void CudaDevice::bitdelta_apply(ElemType t, std::span<const uint8_t> base, std::span<const uint8_t> signs,
                                std::span<const float> scales, const UnitMap& units, float alpha,
                                std::span<uint8_t> out) {
  s_->bind();
  State& s = *s_;
  const uint64_t n = out.size() / elem_bytes(t);
  uint8_t* dbase = s.base.as<uint8_t>(base.size());
  uint8_t* dsigns = s.words.as<uint8_t>(signs.size());
  float* dscales = s.scales.as<float>(scales.size());
  uint8_t* dout = s.out.as<uint8_t>(out.size());
  s.to_device(dbase, base.data(), base.size(), "copy base");
  s.to_device(dsigns, signs.data(), signs.size(), "copy sign bits");
  s.to_device(dscales, scales.data(), scales.size() * 4, "copy scales");
  if (n)
    bitdelta_apply_kernel<<<blocks_for(n), kThreads, 0, s.stream>>>(t, dbase, dsigns, dscales, units, alpha, n, dout);
  check(cudaGetLastError(), "launching the BitDelta apply kernel");
  s.to_host(out.data(), dout, out.size(), "copy the output");
}

}  // namespace deltakit::gpu
