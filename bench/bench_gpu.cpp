// The CUDA backend's speed against the ceilings of the same machine, measured in the same run:
//   compress (one-level BitDelta's fused pass, host finish included) and apply, inputs in host
//   memory, against one host→device copy of the bytes they move in;
//   the fused pass with its inputs already on the device, against a device→device copy of the
//   same bytes;
//   the CPU's fused pass over the same tensors, for the speedup;
//   then DARE alone's pass (p = 0.9 and 0.5) and quant alone's (4 and 8 bits) the same ways, and
//   their apply; last, merge's mix of three task vectors (TIES's sign election) against the
//   host->device copy of its inputs.
// Without a usable GPU it says why and exits 0 (it builds everywhere; it runs where a GPU is).
//   bench_gpu [tensors=8] [rows=4096] [cols=4096]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench/bench_timing.h"
#include "src/codec/bitdelta.h"
#include "src/codec/codec.h"
#include "src/codec/quant.h"
#include "src/codec/sparse.h"
#include "src/codec/stage.h"
#include "src/core/half.h"
#include "src/gpu/device_codec.h"
#include "src/gpu/device_merge.h"
#include "src/gpu/host_reference.h"

using namespace deltakit;
using deltakit::bench::best_of;

namespace {
// bf16 weights ~N(0, 0.02) and a fine-tune 5% off them: xorshift noise, cheap to make at GBs
std::vector<uint8_t> bf16_noise(uint64_t n, uint64_t seed, float scale, const std::vector<uint8_t>* around) {
  std::vector<uint8_t> out(2 * n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (uint64_t i = 0; i < n; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    float v = (static_cast<float>(x >> 40) / 16777216.0f - 0.5f) * 2 * scale;
    if (around) {
      uint16_t b;
      std::memcpy(&b, around->data() + 2 * i, 2);
      v += bf16_to_f32(b);
    }
    const uint16_t h = f32_to_bf16(v);
    std::memcpy(out.data() + 2 * i, &h, 2);
  }
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  const int tensors = argc > 1 ? std::atoi(argv[1]) : 8;
  const uint64_t rows = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4096;
  const uint64_t cols = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 4096;
  if (std::string why = gpu::cuda_unavailable(); !why.empty()) {
    std::printf("bench_gpu: %s; nothing measured\n", why.c_str());
    return 0;
  }
  auto dev = gpu::CudaDevice::open();
  std::printf("device: %s\n", dev->describe().c_str());
  const uint64_t n = rows * cols;
  std::vector<std::vector<uint8_t>> base, ft;
  for (int t = 0; t < tensors; ++t) {
    base.push_back(bf16_noise(n, 2 * t + 1, 0.02f, nullptr));
    ft.push_back(bf16_noise(n, 2 * t + 2, 0.001f, &base.back()));
  }
  const std::vector<uint64_t> shape = {rows, cols};
  const double pair_bytes = 4.0 * n * tensors;  // base + fine-tune, bf16
  std::printf("inputs: %d bf16 tensors of %llu x %llu, %.2f GB (base + fine-tune)\n", tensors,
              static_cast<unsigned long long>(rows), static_cast<unsigned long long>(cols), pair_bytes / 1e9);

  for (const char* recipe : {"bitdelta", "bitdelta:scale=row"}) {
    const Recipe r = parse_recipe(recipe, 0);
    const auto prm = *one_level_bitdelta(r);
    const BitDeltaLayout layout = bitdelta_layout(prm, rows, cols);
    std::vector<Encoded> stored(tensors);
    auto compress = [&](gpu::CudaDevice* d) {
      for (int t = 0; t < tensors; ++t) {
        const TensorView b{"w", DType::BF16, shape, base[t]}, f{"w", DType::BF16, shape, ft[t]};
        const PreparedDelta p = gpu::prepare_delta_on(d, r, b, f);
        stored[t] = encode_streamed(r, b, f, *p.stream);
      }
    };
    compress(dev.get());  // warm-up: buffers allocated, kernels loaded
    const double h2d = best_of(3, [&] {
      for (int t = 0; t < tensors; ++t) dev->h2d_seconds(base[t]), dev->h2d_seconds(ft[t]);
    });
    const double gpu_host = best_of(3, [&] { compress(dev.get()); });
    const double cpu = best_of(1, [&] { compress(nullptr); });
    // inputs resident: one tensor pair uploaded, its pass timed against a copy of its bytes
    const TensorView b0{"w", DType::BF16, shape, base[0]}, f0{"w", DType::BF16, shape, ft[0]};
    dev->upload_pair(gpu::pair_view(b0, f0), n);
    bool bad = false;
    const double resident = best_of(5, [&] { dev->bitdelta_sums_resident(gpu::ElemType::BF16, layout, bad); });
    double d2d = 1e30;
    for (int k = 0; k < 5; ++k) d2d = std::min(d2d, dev->d2d_seconds(4 * n));
    std::printf("\ncompress %s\n", recipe);
    std::printf(
        "  inputs in host memory: %.3f s, %.2f GB/s; host->device copy of the same bytes %.3f s, %.2f GB/s;"
        " ratio %.2f\n",
        gpu_host, pair_bytes / gpu_host / 1e9, h2d, pair_bytes / h2d / 1e9, h2d / gpu_host);
    std::printf(
        "  inputs on the device: %.2f ms per pair, %.1f GB/s; device copy of the same bytes %.2f ms,"
        " %.1f GB/s; ratio %.2f\n",
        resident * 1e3, 4.0 * n / resident / 1e9, d2d * 1e3, 4.0 * n / d2d / 1e9, d2d / resident);
    std::printf("  CPU fused pass, same tensors: %.3f s (GPU from host memory %.1fx faster)\n", cpu, cpu / gpu_host);

    // apply: base + δ̂ from the stored tensors, out to host memory
    std::vector<uint8_t> out(2 * n);
    auto apply = [&](gpu::CudaDevice* d) {
      for (int t = 0; t < tensors; ++t) {
        const EncodedSource src(stored[t]);
        gpu::decode_add_on(d, {stored[t].attrs, src, "bench"}, {"w", DType::BF16, shape, base[t]}, 1.0f, out);
      }
    };
    apply(dev.get());
    const double a_gpu = best_of(3, [&] { apply(dev.get()); });
    const double a_cpu = best_of(1, [&] { apply(nullptr); });
    const double a_h2d = best_of(3, [&] {
      for (int t = 0; t < tensors; ++t) dev->h2d_seconds(base[t]);
    });
    std::printf(
        "apply %s: %.3f s, %.2f GB/s of base; host->device copy of the base %.3f s (ratio %.2f; the copy"
        " back of the output is not in the ceiling); CPU %.3f s (%.1fx)\n",
        recipe, a_gpu, 2.0 * n * tensors / a_gpu / 1e9, a_h2d, a_h2d / a_gpu, a_cpu, a_cpu / a_gpu);
  }

  // DARE alone: the mask, the compaction and the error on the device, the positions' coding on the
  // host; quant alone: the groups' ranges, codes and the error on the device
  for (const char* recipe : {"dare:p=0.9", "dare:p=0.5", "quant:bits=4", "quant:bits=8,group=64"}) {
    const Recipe r = parse_recipe(recipe, 0);
    auto compress = [&](gpu::CudaDevice* d) {
      for (int t = 0; t < tensors; ++t) {
        const TensorView b{"w", DType::BF16, shape, base[t]}, f{"w", DType::BF16, shape, ft[t]};
        const PreparedDelta p = gpu::prepare_delta_on(d, r, b, f);
        encode_streamed(r, b, f, *p.stream);
      }
    };
    compress(dev.get());
    const double h2d = best_of(3, [&] {
      for (int t = 0; t < tensors; ++t) dev->h2d_seconds(base[t]), dev->h2d_seconds(ft[t]);
    });
    const double gpu_host = best_of(3, [&] { compress(dev.get()); });
    const double cpu = best_of(1, [&] { compress(nullptr); });
    const TensorView b0{"w", DType::BF16, shape, base[0]}, f0{"w", DType::BF16, shape, ft[0]};
    dev->upload_pair(gpu::pair_view(b0, f0), n);
    bool bad = false;
    const auto dare = dare_alone(r);
    const auto quant = quant_alone(r);
    const double resident = best_of(5, [&] {
      if (dare)
        dev->dare_kept_resident(gpu::ElemType::BF16, gpu::dare_draw(*dare, "w"), n, bad);
      else
        dev->quant_groups_resident(gpu::ElemType::BF16, quant->bits, quant->group, n, bad);
    });
    double d2d = 1e30;
    for (int k = 0; k < 5; ++k) d2d = std::min(d2d, dev->d2d_seconds(4 * n));
    std::printf("\ncompress %s\n", recipe);
    std::printf("  inputs in host memory: %.3f s, %.2f GB/s; host->device copy %.3f s; ratio %.2f\n", gpu_host,
                pair_bytes / gpu_host / 1e9, h2d, h2d / gpu_host);
    std::printf(
        "  inputs on the device (results copied back): %.2f ms per pair, %.1f GB/s; device copy %.2f ms;"
        " ratio %.2f\n",
        resident * 1e3, 4.0 * n / resident / 1e9, d2d * 1e3, d2d / resident);
    std::printf("  CPU fused pass, same tensors: %.3f s (GPU from host memory %.1fx faster)\n", cpu, cpu / gpu_host);

    // apply of what the CPU stored: base + δ̂, out to host memory
    std::vector<Encoded> stored(tensors);
    for (int t = 0; t < tensors; ++t) {
      const TensorView b{"w", DType::BF16, shape, base[t]}, f{"w", DType::BF16, shape, ft[t]};
      const PreparedDelta p = prepare_delta(r, b, f);
      stored[t] = encode_streamed(r, b, f, *p.stream);
    }
    std::vector<uint8_t> out(2 * n);
    auto apply = [&](gpu::CudaDevice* d) {
      for (int t = 0; t < tensors; ++t) {
        const EncodedSource src(stored[t]);
        gpu::decode_add_on(d, {stored[t].attrs, src, "bench"}, {"w", DType::BF16, shape, base[t]}, 1.0f, out);
      }
    };
    apply(dev.get());
    const double a_gpu = best_of(3, [&] { apply(dev.get()); });
    const double a_cpu = best_of(1, [&] { apply(nullptr); });
    std::printf("  apply: %.3f s, %.2f GB/s of base (payload read and checked on the host); CPU %.3f s (%.1fx)\n",
                a_gpu, 2.0 * n * tensors / a_gpu / 1e9, a_cpu, a_cpu / a_gpu);
  }

  // merge's mix: three task vectors of n entries, weighed and mixed by TIES's sign election
  {
    std::vector<std::vector<float>> tv(3, std::vector<float>(n));
    std::vector<float> base_f(n), out_f(n);
    for (uint64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, base[0].data() + 2 * i, 2);
      base_f[i] = bf16_to_f32(h);
      for (int k = 0; k < 3; ++k) {
        std::memcpy(&h, ft[k % tensors].data() + 2 * i, 2);
        tv[k][i] = bf16_to_f32(h) - base_f[i];
      }
    }
    TensorMergeArgs a;
    a.base = base_f, a.weight = {0.7, 0.5, 0.3}, a.normalize = true;
    const MergeMethod& ties = merge_method("ties");
    auto mix = [&](gpu::CudaDevice* d) {
      a.models.clear();
      for (auto& v : tv) a.models.push_back(v);
      gpu::combine_on(d, ties, a, out_f);
    };
    mix(dev.get());
    const double m_gpu = best_of(3, [&] { mix(dev.get()); });
    std::vector<uint8_t> bytes(4 * n * 4);
    const double m_h2d = best_of(3, [&] { dev->h2d_seconds(bytes); });
    std::vector<std::vector<float>> saved = tv;  // the CPU's mix weighs in place
    const double m_cpu = best_of(1, [&] { mix(nullptr); });
    tv = saved;
    std::printf(
        "\nmerge mix (ties' sign election, 3 task vectors + base of %llu entries, fp32): %.3f s; host->device copy"
        " of those bytes %.3f s (ratio %.2f); CPU %.3f s (%.1fx)\n",
        static_cast<unsigned long long>(n), m_gpu, m_h2d, m_h2d / m_gpu, m_cpu, m_cpu / m_gpu);
  }
  return 0;
}
