// The CUDA backend (src/gpu). GpuHost.*: on every machine, the kernels' per-thread functions run
// in host loops (host_reference.h) against the CPU codec — same adapter parts, same applied
// bytes — and the shared (host and device) Philox function gives the CPU stream. GpuDevice.*: on
// a machine with a GPU, the kernels against the host reference; elsewhere they skip, saying why.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "src/codec/bitdelta.h"
#include "src/codec/codec.h"
#include "src/codec/quant.h"
#include "src/codec/sparse.h"
#include "src/codec/stage.h"
#include "src/core/error.h"
#include "src/core/philox.h"
#include "src/gpu/device_codec.h"
#include "src/gpu/device_merge.h"
#include "src/gpu/host_reference.h"
#include "tests/unit/codec_test_util.h"

namespace deltakit {
namespace {

using Pair = testing::TensorPairFixture;
using testing::make_tensor_pair;

// What the CPU's fused pass stores for the pair.
Encoded cpu_encoding(const Recipe& r, const Pair& p) {
  const PreparedDelta prep = prepare_delta(r, p.base_view(), p.ft_view());
  EXPECT_TRUE(prep.stream);
  return encode_streamed(r, p.base_view(), p.ft_view(), *prep.stream);
}

// What the device pass stores, given the device's sums.
Encoded encoding_from_sums(const Recipe& r, const Pair& p, BitDeltaSums sums) {
  const uint64_t n = p.base.size() / dtype_size(p.dtype), cols = p.shape.back();
  const auto prm = one_level_bitdelta(r);
  EXPECT_TRUE(prm);
  auto enc = bitdelta_encoder_from_sums(*prm, bitdelta_layout(*prm, n / cols, cols), std::move(sums));
  return encode_streamed(r, p.base_view(), p.ft_view(), *enc);
}

void expect_same(const Encoded& got, const Encoded& want) {
  EXPECT_EQ(got.attrs.dump(), want.attrs.dump());
  ASSERT_EQ(got.parts.size(), want.parts.size());
  for (size_t k = 0; k < want.parts.size(); ++k) {
    EXPECT_EQ(got.parts[k].name, want.parts[k].name);
    EXPECT_EQ(got.parts[k].bytes, want.parts[k].bytes) << want.parts[k].name;
  }
  EXPECT_EQ(got.err_sq, want.err_sq);  // the closed form over the same sums: the same double
  EXPECT_EQ(got.delta_sq, want.delta_sq);
}

const std::vector<std::vector<uint64_t>> kShapes = {{96, 700}, {3, 40001}, {37, 101}, {1, 50000}, {5, 8}};
const char* const kRecipes[] = {"bitdelta", "bitdelta:scale=row", "bitdelta:scale=group:13", "bitdelta:scale=group:128",
                                "bitdelta:scale=group:20000"};

// Every (recipe, dtype, shape) case of a recipe list, traced.
template <size_t N, class Body>
void for_each_case(const char* const (&recipes)[N], Body body) {
  for (const char* recipe : recipes)
    for (DType dt : {DType::BF16, DType::F16, DType::F32})
      for (const auto& shape : kShapes) {
        SCOPED_TRACE(std::string(recipe) + " " + std::string(dtype_name(dt)) + " " + std::to_string(shape[0]) + "x" +
                     std::to_string(shape[1]));
        body(recipe, dt, shape);
      }
}

TEST(GpuHost, PhiloxStreamIsTheCpuStream) {
  for (uint64_t seed : {0ull, 7ull, 0x123456789abcdefull})
    for (const char* name : {"w", "model.layers.3.mlp.down_proj.weight"}) {
      const TensorRng rng(seed, name);
      std::vector<uint32_t> cpu(1001);
      rng.words(5, cpu.size(), cpu.data());  // from an unaligned element, as a rank's slice starts
      for (uint64_t k = 0; k < cpu.size(); ++k) ASSERT_EQ(philox_word(rng.stream(), 5 + k), cpu[k]) << k;
    }
}

TEST(GpuHost, BitDeltaSumsGiveTheCpuAdapterBytes) {
  for_each_case(kRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    const Pair p = make_tensor_pair(shape, dt, 3);
    const Recipe r = parse_recipe(recipe, 0);
    const auto prm = one_level_bitdelta(r);
    ASSERT_TRUE(prm);
    bool nonfinite = true;
    BitDeltaSums sums = gpu::bitdelta_sums_reference(gpu::pair_view(p.base_view(), p.ft_view()),
                                                     bitdelta_layout(*prm, shape[0], shape[1]), nonfinite);
    EXPECT_FALSE(nonfinite);
    expect_same(encoding_from_sums(r, p, std::move(sums)), cpu_encoding(r, p));
  });
}

TEST(GpuHost, NonFiniteDeltaIsFlagged) {
  Pair p = make_tensor_pair({4, 4100}, DType::BF16, 5);
  const uint16_t inf = 0x7f80;
  std::memcpy(p.ft.data() + 2 * 9000, &inf, 2);  // in a later run and piece than the first
  const auto prm = one_level_bitdelta(parse_recipe("bitdelta", 0));
  bool nonfinite = false;
  gpu::bitdelta_sums_reference(gpu::pair_view(p.base_view(), p.ft_view()), bitdelta_layout(*prm, 4, 4100), nonfinite);
  EXPECT_TRUE(nonfinite);
  // and the device path (on the CPU here) falls back to raw as the CPU pass does
  const PreparedDelta prep = gpu::prepare_delta_on(nullptr, parse_recipe("bitdelta", 0), p.base_view(), p.ft_view());
  EXPECT_EQ(prep.fallback, kNonFiniteDelta);
}

TEST(GpuHost, OnlyOneLevelBitDeltaAloneTakesTheDevicePass) {
  for (const char* recipe : {"bitdelta", "bitdelta:scale=row"}) EXPECT_TRUE(one_level_bitdelta(parse_recipe(recipe)));
  for (const char* recipe : {"raw", "bitdelta:levels=2", "dare:p=0.5 > bitdelta", "bitdelta + cherry:frac=0.01",
                             "quant:bits=4", "dare:p=0.9"})
    EXPECT_FALSE(one_level_bitdelta(parse_recipe(recipe))) << recipe;
}

const char* const kDareRecipes[] = {"dare:p=0.9", "dare:p=0.5,rescale=none,seed=3", "dare:p=0.25,rescale=1.5",
                                    "dare:p=1", "dare:p=0"};

// What the device pass stores, given what the device kept.
Encoded encoding_from_kept(const Recipe& r, const Pair& p, DareKept kept) {
  const uint64_t n = p.base.size() / dtype_size(p.dtype);
  auto enc = dare_encoder_from_kept(*dare_alone(r), p.dtype, n, std::move(kept));
  return encode_streamed(r, p.base_view(), p.ft_view(), *enc);
}

TEST(GpuHost, DareKeptGivesTheCpuAdapterBytes) {
  for_each_case(kDareRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    const Pair p = make_tensor_pair(shape, dt, 3);
    const Recipe r = parse_recipe(recipe, 0);
    const auto prm = dare_alone(r);
    ASSERT_TRUE(prm);
    bool nonfinite = true;
    DareKept kept = gpu::dare_kept_reference(gpu::pair_view(p.base_view(), p.ft_view()), gpu::dare_draw(*prm, "w"),
                                             shape[0] * shape[1], nonfinite);
    EXPECT_FALSE(nonfinite);
    expect_same(encoding_from_kept(r, p, std::move(kept)), cpu_encoding(r, p));
  });
}

TEST(GpuHost, DareNonFiniteDeltaIsFlagged) {
  Pair p = make_tensor_pair({4, 4100}, DType::F16, 5);
  const uint16_t nan = 0x7e00;
  std::memcpy(p.ft.data() + 2 * 16390, &nan, 2);  // in the second error piece
  bool nonfinite = false;
  gpu::dare_kept_reference(gpu::pair_view(p.base_view(), p.ft_view()), gpu::dare_draw(DareParams{}, "w"), 4 * 4100,
                           nonfinite);
  EXPECT_TRUE(nonfinite);
}

TEST(GpuHost, OnlyDareAloneTakesTheDareDevicePass) {
  for (const char* recipe : {"dare", "dare:p=0.3,seed=9"}) EXPECT_TRUE(dare_alone(parse_recipe(recipe))) << recipe;
  for (const char* recipe : {"raw", "bitdelta", "dare:p=0.5 > bitdelta", "dare:p=0.5 > quant:bits=4",
                             "dare:p=0.5 + cherry:frac=0.01", "topk:density=0.1"})
    EXPECT_FALSE(dare_alone(parse_recipe(recipe))) << recipe;
}

// decode_add_stored (the CPU's apply) against the per-entry function the apply kernel runs.
TEST(GpuHost, BitDeltaApplyGivesTheCpuBytes) {
  for_each_case(kRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    for (float alpha : {1.0f, 0.5f, -1.25f}) {
      SCOPED_TRACE("alpha " + std::to_string(alpha));
      const Pair p = make_tensor_pair(shape, dt, 9);
      const Encoded e = cpu_encoding(parse_recipe(recipe, 0), p);
      std::vector<uint8_t> cpu(p.base.size()), ref(p.base.size());
      const EncodedSource src(e);
      const StoredTensor st{e.attrs, src, "test"};
      decode_add_stored(st, p.base_view(), alpha, cpu);
      const auto b = stored_one_level_bitdelta({e.attrs, "test"}, src, shape[0], shape[1]);
      ASSERT_TRUE(b);
      gpu::bitdelta_apply_reference(gpu::elem_type(dt), p.base, b->signs, b->scales, gpu::unit_map_of(*b, shape[1]),
                                    alpha, ref);
      EXPECT_EQ(ref, cpu);
    }
  });
}

const char* const kQuantRecipes[] = {"quant:bits=4", "quant:bits=2,group=64", "quant:bits=3,group=8",
                                     "quant:bits=8,group=1000", "quant:bits=4,group=16384"};

// A pair whose first 300 entries (at most half) are unchanged: groups whose range is zero (step 0)
// or has a zero bound.
Pair quant_pair(const std::vector<uint64_t>& shape, DType dt, uint32_t seed) {
  Pair p = make_tensor_pair(shape, dt, seed);
  const size_t k = std::min<size_t>(300 * dtype_size(dt), p.ft.size() / 2);
  std::memcpy(p.ft.data(), p.base.data(), k);
  if (k > 8 * dtype_size(dt)) {  // δ_7 = −0 − (+0) = −0 ending a group of +0s: the first of equal bounds decides
    std::memset(p.base.data() + 7 * dtype_size(dt), 0, dtype_size(dt));
    std::memset(p.ft.data() + 7 * dtype_size(dt), 0, dtype_size(dt));
    p.ft[8 * dtype_size(dt) - 1] = 0x80;  // the sign bit (little-endian)
  }
  return p;
}

TEST(GpuHost, QuantGroupsGiveTheCpuAdapterBytes) {
  for_each_case(kQuantRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    const Pair p = quant_pair(shape, dt, 3);
    const Recipe r = parse_recipe(recipe, 0);
    const auto prm = quant_alone(r);
    ASSERT_TRUE(prm);
    const uint64_t n = shape[0] * shape[1];
    bool nonfinite = true;
    QuantGroups g =
        gpu::quant_groups_reference(gpu::pair_view(p.base_view(), p.ft_view()), prm->bits, prm->group, n, nonfinite);
    EXPECT_FALSE(nonfinite);
    auto enc = quant_encoder_from_groups(*prm, n, std::move(g));
    expect_same(encode_streamed(r, p.base_view(), p.ft_view(), *enc), cpu_encoding(r, p));
  });
}

TEST(GpuHost, QuantApplyGivesTheCpuBytes) {
  for_each_case(kQuantRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    for (float alpha : {1.0f, -1.25f}) {
      SCOPED_TRACE("alpha " + std::to_string(alpha));
      const Pair p = quant_pair(shape, dt, 9);
      const Encoded e = cpu_encoding(parse_recipe(recipe, 0), p);
      std::vector<uint8_t> cpu(p.base.size()), ref(p.base.size());
      const EncodedSource src(e);
      decode_add_stored({e.attrs, src, "test"}, p.base_view(), alpha, cpu);
      const auto q = stored_quant_alone({e.attrs, "test"}, src, shape[0] * shape[1]);
      ASSERT_TRUE(q);
      gpu::quant_apply_reference(gpu::elem_type(dt), p.base, *q, alpha, ref);
      EXPECT_EQ(ref, cpu);
    }
  });
}

TEST(GpuHost, OnlyQuantAloneInBlocksTakesTheQuantDevicePass) {
  for (const char* recipe : {"quant", "quant:bits=3,group=8"}) EXPECT_TRUE(quant_alone(parse_recipe(recipe))) << recipe;
  for (const char* recipe : {"quant:bits=3,group=7", "quant:bits=4,group=32768", "dare:p=0.5 > quant:bits=4",
                             "quant:bits=4 + cherry:frac=0.01", "bitdelta"})
    EXPECT_FALSE(quant_alone(parse_recipe(recipe))) << recipe;
}

// Task vectors with zeros among them (a sparsifier's drops), for the merge's mix.
std::vector<std::vector<float>> task_vectors(unsigned m, uint64_t n) {
  std::vector<std::vector<float>> tv;
  for (unsigned k = 0; k < m; ++k) {
    tv.push_back(testing::normal_vector(n, 20 + k, 0.01f));
    for (uint64_t j = k; j < n; j += 3 + k) tv.back()[j] = 0.0f;
  }
  return tv;
}

// combine_task_vectors (the CPU's mix, per merge method) against combine_entry run per entry.
TEST(GpuHost, CombineGivesTheCpuBits) {
  const uint64_t n = 5003;
  const auto base = testing::normal_vector(n, 7, 1.0f);
  const std::vector<std::vector<double>> weight_sets = {{1.0}, {1.0, 1.0, 1.0}, {0.5, -0.25, 2.0}, {1.0, -1.0, 0.0}};
  for (const char* method : {"task_arithmetic", "ties", "dare_linear", "breadcrumbs_ties"})
    for (const auto& weights : weight_sets)
      for (bool normalize : {false, true})
        for (double lambda : {1.0, 0.7}) {
          SCOPED_TRACE(std::string(method) + " models " + std::to_string(weights.size()) + " normalize " +
                       std::to_string(normalize) + " lambda " + std::to_string(lambda));
          const auto tv = task_vectors(static_cast<unsigned>(weights.size()), n);
          TensorMergeArgs a;
          a.base = base, a.weight = weights, a.normalize = normalize, a.lambda = lambda;
          std::vector<std::vector<float>> cpu_tv = tv;
          for (auto& v : cpu_tv) a.models.push_back(v);
          std::vector<float> cpu(n), ref(n);
          gpu::combine_on(nullptr, merge_method(method), a, cpu);  // the CPU's
          const std::vector<std::span<const float>> spans(tv.begin(), tv.end());
          gpu::combine_reference(gpu::combine_entry_options(merge_method(method), a), base, spans, weights, ref);
          EXPECT_EQ(0, std::memcmp(cpu.data(), ref.data(), 4 * n));
        }
  // consensus by count, which no method has by default
  const auto tv = task_vectors(3, n);
  std::vector<std::vector<float>> weighed = tv;
  const std::vector<double> w = {0.5, 1.5, -1.0};
  for (unsigned k = 0; k < 3; ++k)
    for (float& x : weighed[k]) x *= static_cast<float>(w[k]);
  std::vector<float> cpu(n), ref(n);
  combine_deltas(base, {weighed[0], weighed[1], weighed[2]}, w, {Consensus::Count, true, 1.0}, cpu);
  CombineEntryOptions o;
  o.consensus = 2, o.normalize = true, o.all_weights = 1.0;
  gpu::combine_reference(o, base, {tv[0], tv[1], tv[2]}, w, ref);
  EXPECT_EQ(0, std::memcmp(cpu.data(), ref.data(), 4 * n));
}

TEST(GpuHost, DareApplyGivesTheCpuBytes) {
  for_each_case(kDareRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    for (float alpha : {1.0f, 0.5f, -1.25f}) {
      SCOPED_TRACE("alpha " + std::to_string(alpha));
      const Pair p = make_tensor_pair(shape, dt, 9);
      const Encoded e = cpu_encoding(parse_recipe(recipe, 0), p);
      std::vector<uint8_t> cpu(p.base.size()), ref(p.base.size());
      const EncodedSource src(e);
      decode_add_stored({e.attrs, src, "test"}, p.base_view(), alpha, cpu);
      const auto d = stored_dare_alone({e.attrs, "test"}, src, shape[0] * shape[1], dt);
      ASSERT_TRUE(d);
      gpu::dare_apply_reference(gpu::elem_type(dt), p.base, d->positions, d->values, alpha, ref);
      EXPECT_EQ(ref, cpu);
    }
  });
}

TEST(GpuHost, StoredDareAloneOnly) {
  const Pair p = make_tensor_pair({8, 64}, DType::BF16, 1);
  for (const char* recipe :
       {"dare:p=0.5 > bitdelta", "dare:p=0.5 + cherry:frac=0.05", "topk:density=0.2", "bitdelta"}) {
    const Recipe r = parse_recipe(recipe, 0);
    const PreparedDelta prep = prepare_delta(r, p.base_view(), p.ft_view());
    TensorPair pair;
    pair.name = "w", pair.base = p.base_view(), pair.ft = p.ft_view(), pair.recipe = &r, pair.prepared = &prep;
    const Encoded e = encode_tensor_pair(pair).encoded;
    const EncodedSource src(e);
    EXPECT_FALSE(stored_dare_alone({e.attrs, "test"}, src, 8 * 64, DType::BF16)) << recipe;
  }
}

TEST(GpuHost, StoredOneLevelBitDeltaOnly) {
  const Pair p = make_tensor_pair({8, 64}, DType::BF16, 1);
  for (const char* recipe : {"bitdelta:levels=2", "bitdelta + cherry:frac=0.05", "dare:p=0.5 > bitdelta"}) {
    const Recipe r = parse_recipe(recipe, 0);
    const PreparedDelta prep = prepare_delta(r, p.base_view(), p.ft_view());
    TensorPair pair;
    pair.name = "w", pair.base = p.base_view(), pair.ft = p.ft_view(), pair.recipe = &r, pair.prepared = &prep;
    const Encoded e = encode_tensor_pair(pair).encoded;
    const EncodedSource src(e);
    EXPECT_FALSE(stored_one_level_bitdelta({e.attrs, "test"}, src, 8, 64)) << recipe;
  }
}

TEST(GpuHost, OpeningADeviceSaysWhyThereIsNone) {
  const std::string why = gpu::cuda_unavailable();
  if (!why.empty()) {
    try {
      gpu::CudaDevice::open();
      FAIL() << "opened a device that cuda_unavailable() says is not there";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::Device);
      EXPECT_NE(std::string(e.what()).find(gpu::cuda_built() ? "no usable GPU" : "built without CUDA"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(gpu::parse_device("cpu"), gpu::Device::Cpu);
  EXPECT_EQ(gpu::parse_device("cuda"), gpu::Device::Cuda);
  EXPECT_THROW(gpu::parse_device("gpu"), Error);
  gpu::DevicePool cpu(gpu::Device::Cpu);  // the CPU's pool: no device, leases of nullptr
  EXPECT_FALSE(cpu.gpu());
  EXPECT_EQ(cpu.take().get(), nullptr);
  if (!why.empty()) {
    EXPECT_THROW(gpu::DevicePool pool(gpu::Device::Cuda), Error);
  }
}

// --- on a GPU ---------------------------------------------------------------------------------

std::unique_ptr<gpu::CudaDevice> device_or_skip() {
  if (std::string why = gpu::cuda_unavailable(); !why.empty()) return nullptr;
  return gpu::CudaDevice::open();
}
#define DEVICE_OR_SKIP(dev)                                        \
  auto dev = device_or_skip();                                     \
  if (!dev) GTEST_SKIP() << "no GPU: " << gpu::cuda_unavailable(); \
  std::cout << "[ device   ] " << dev->describe() << "\n"

TEST(GpuDevice, BitDeltaSumsAreTheHostReference) {
  DEVICE_OR_SKIP(dev);
  for_each_case(kRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    const Pair p = make_tensor_pair(shape, dt, 3);
    const auto prm = one_level_bitdelta(parse_recipe(recipe, 0));
    const BitDeltaLayout layout = bitdelta_layout(*prm, shape[0], shape[1]);
    bool bad_ref = true, bad_dev = true;
    const BitDeltaSums ref = gpu::bitdelta_sums_reference(gpu::pair_view(p.base_view(), p.ft_view()), layout, bad_ref);
    const BitDeltaSums got = dev->bitdelta_sums(gpu::pair_view(p.base_view(), p.ft_view()), layout, bad_dev);
    EXPECT_EQ(bad_dev, bad_ref);
    EXPECT_EQ(got.signs, ref.signs);
    ASSERT_EQ(got.run_abs.size(), ref.run_abs.size());
    EXPECT_EQ(0, std::memcmp(got.run_abs.data(), ref.run_abs.data(), 4 * ref.run_abs.size()));
    ASSERT_EQ(got.piece_sq.size(), ref.piece_sq.size());
    EXPECT_EQ(0, std::memcmp(got.piece_sq.data(), ref.piece_sq.data(), 8 * ref.piece_sq.size()));
    // and so the adapter's bytes through the device pass
    const Recipe r = parse_recipe(recipe, 0);
    const PreparedDelta prep = gpu::prepare_delta_on(dev.get(), r, p.base_view(), p.ft_view());
    ASSERT_TRUE(prep.stream);
    expect_same(encode_streamed(r, p.base_view(), p.ft_view(), *prep.stream), cpu_encoding(r, p));
  });
}

TEST(GpuDevice, NonFiniteDeltaIsFlagged) {
  DEVICE_OR_SKIP(dev);
  Pair p = make_tensor_pair({4, 4100}, DType::BF16, 5);
  const uint16_t inf = 0x7f80;
  std::memcpy(p.ft.data() + 2 * 9000, &inf, 2);
  const PreparedDelta prep = gpu::prepare_delta_on(dev.get(), parse_recipe("bitdelta", 0), p.base_view(), p.ft_view());
  EXPECT_EQ(prep.fallback, kNonFiniteDelta);
}

TEST(GpuDevice, DareKeptIsTheHostReference) {
  DEVICE_OR_SKIP(dev);
  for_each_case(kDareRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    const Pair p = make_tensor_pair(shape, dt, 3);
    const Recipe r = parse_recipe(recipe, 0);
    const gpu::DareDraw draw = gpu::dare_draw(*dare_alone(r), "w");
    const gpu::PairView pv = gpu::pair_view(p.base_view(), p.ft_view());
    bool bad_ref = true, bad_dev = true;
    const DareKept ref = gpu::dare_kept_reference(pv, draw, shape[0] * shape[1], bad_ref);
    const DareKept got = dev->dare_kept(pv, draw, shape[0] * shape[1], bad_dev);
    EXPECT_EQ(bad_dev, bad_ref);
    EXPECT_EQ(got.positions, ref.positions);
    EXPECT_EQ(got.values, ref.values);
    ASSERT_EQ(got.piece_err_sq.size(), ref.piece_err_sq.size());
    EXPECT_EQ(0, std::memcmp(got.piece_err_sq.data(), ref.piece_err_sq.data(), 8 * ref.piece_err_sq.size()));
    EXPECT_EQ(0, std::memcmp(got.piece_delta_sq.data(), ref.piece_delta_sq.data(), 8 * ref.piece_delta_sq.size()));
    // and so the adapter's bytes through the device pass
    const PreparedDelta prep = gpu::prepare_delta_on(dev.get(), r, p.base_view(), p.ft_view());
    ASSERT_TRUE(prep.stream);
    expect_same(encode_streamed(r, p.base_view(), p.ft_view(), *prep.stream), cpu_encoding(r, p));
  });
  Pair p = make_tensor_pair({4, 4100}, DType::BF16, 5);
  const uint16_t inf = 0xff80;
  std::memcpy(p.ft.data() + 2 * 16390, &inf, 2);
  EXPECT_EQ(gpu::prepare_delta_on(dev.get(), parse_recipe("dare:p=0.9", 0), p.base_view(), p.ft_view()).fallback,
            kNonFiniteDelta);
}

// Two workers' devices at once, as a job runs them: each its own stream and buffers.
TEST(GpuDevice, PoolDevicesWorkSideBySide) {
  DEVICE_OR_SKIP(dev);
  gpu::DevicePool pool(gpu::Device::Cuda);
  ASSERT_TRUE(pool.gpu());
  const Pair p = make_tensor_pair({96, 700}, DType::BF16, 3);
  const Recipe r = parse_recipe("dare:p=0.9", 0);
  const Encoded want = cpu_encoding(r, p);
  std::vector<Encoded> got(2);
  std::vector<std::thread> workers;
  for (int w = 0; w < 2; ++w)
    workers.emplace_back([&, w] {
      const gpu::DevicePool::Lease lease = pool.take();
      for (int k = 0; k < 20; ++k) {
        const PreparedDelta prep = gpu::prepare_delta_on(lease.get(), r, p.base_view(), p.ft_view());
        got[w] = encode_streamed(r, p.base_view(), p.ft_view(), *prep.stream);
      }
    });
  for (auto& t : workers) t.join();
  for (const Encoded& e : got) expect_same(e, want);
}

// The device's apply of what the CPU stored for each case, against the CPU's apply.
template <size_t N, class Make>
void expect_device_apply_is_cpu(gpu::CudaDevice& dev, const char* const (&recipes)[N], Make make, float alpha) {
  for_each_case(recipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    const Pair p = make(shape, dt, 9);
    const Encoded e = cpu_encoding(parse_recipe(recipe, 0), p);
    std::vector<uint8_t> cpu(p.base.size()), got(p.base.size());
    const EncodedSource src(e);
    const StoredTensor st{e.attrs, src, "test"};
    decode_add_stored(st, p.base_view(), alpha, cpu);
    gpu::decode_add_on(&dev, st, p.base_view(), alpha, got);
    EXPECT_EQ(got, cpu);
  });
}

TEST(GpuDevice, ApplyIsTheCpuApply) {
  DEVICE_OR_SKIP(dev);
  expect_device_apply_is_cpu(*dev, kRecipes, make_tensor_pair, 0.5f);
  expect_device_apply_is_cpu(*dev, kDareRecipes, make_tensor_pair, -1.25f);
  expect_device_apply_is_cpu(*dev, kQuantRecipes, quant_pair, -1.25f);
}

TEST(GpuDevice, QuantGroupsAreTheHostReference) {
  DEVICE_OR_SKIP(dev);
  for_each_case(kQuantRecipes, [&](const char* recipe, DType dt, const std::vector<uint64_t>& shape) {
    const Pair p = quant_pair(shape, dt, 3);
    const Recipe r = parse_recipe(recipe, 0);
    const QuantParams prm = *quant_alone(r);
    const gpu::PairView pv = gpu::pair_view(p.base_view(), p.ft_view());
    const uint64_t n = shape[0] * shape[1];
    bool bad_ref = true, bad_dev = true;
    const QuantGroups ref = gpu::quant_groups_reference(pv, prm.bits, prm.group, n, bad_ref);
    const QuantGroups got = dev->quant_groups(pv, prm.bits, prm.group, n, bad_dev);
    EXPECT_EQ(bad_dev, bad_ref);
    EXPECT_EQ(got.codes, ref.codes);
    ASSERT_EQ(got.mins.size(), ref.mins.size());
    EXPECT_EQ(0, std::memcmp(got.mins.data(), ref.mins.data(), 4 * ref.mins.size()));
    EXPECT_EQ(0, std::memcmp(got.steps.data(), ref.steps.data(), 4 * ref.steps.size()));
    ASSERT_EQ(got.piece_err_sq.size(), ref.piece_err_sq.size());
    EXPECT_EQ(0, std::memcmp(got.piece_err_sq.data(), ref.piece_err_sq.data(), 8 * ref.piece_err_sq.size()));
    EXPECT_EQ(0, std::memcmp(got.piece_delta_sq.data(), ref.piece_delta_sq.data(), 8 * ref.piece_delta_sq.size()));
    const PreparedDelta prep = gpu::prepare_delta_on(dev.get(), r, p.base_view(), p.ft_view());
    ASSERT_TRUE(prep.stream);
    expect_same(encode_streamed(r, p.base_view(), p.ft_view(), *prep.stream), cpu_encoding(r, p));
  });
}

TEST(GpuDevice, CombineIsTheHostReference) {
  DEVICE_OR_SKIP(dev);
  const uint64_t n = 70001;
  const auto base = testing::normal_vector(n, 7, 1.0f);
  for (const char* method : {"task_arithmetic", "ties", "dare_linear"})
    for (bool normalize : {false, true}) {
      SCOPED_TRACE(std::string(method) + " normalize " + std::to_string(normalize));
      const std::vector<double> weights = {0.5, -0.25, 2.0};
      const auto tv = task_vectors(3, n);
      TensorMergeArgs a;
      a.base = base, a.weight = weights, a.normalize = normalize, a.lambda = 0.7;
      std::vector<std::vector<float>> cpu_tv = tv;
      for (auto& v : cpu_tv) a.models.push_back(v);
      std::vector<float> got(n), cpu(n);
      gpu::combine_on(dev.get(), merge_method(method), a, got);
      gpu::combine_on(nullptr, merge_method(method), a, cpu);
      EXPECT_EQ(0, std::memcmp(got.data(), cpu.data(), 4 * n));
    }
}

}  // namespace
}  // namespace deltakit
