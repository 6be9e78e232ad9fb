#include "src/pipeline/diff.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "formats/checkpoint.h"
#include "src/core/layer_name.h"
#include "src/core/tensor_view.h"
#include "src/pipeline/finetune_input.h"

namespace deltakit {

namespace {
constexpr uint64_t kBlock = 4096;
constexpr int kLanes = 16;  // independent accumulators so the compiler can vectorize the sums
}  // namespace

TensorDiff diff_tensor(const TensorView& base, const TensorView& ft) {
  TensorDiff t;
  t.name = ft.name;
  t.dtype = std::string(dtype_name(ft.dtype));
  t.shape = ft.shape;
  t.numel = ft.numel();
  const size_t es = dtype_size(ft.dtype);
  if (!dtype_is_float_decodable(ft.dtype)) {
    t.numeric = false;
    for (uint64_t i = 0; i < t.numel; ++i)
      t.unchanged += std::memcmp(base.bytes.data() + i * es, ft.bytes.data() + i * es, es) == 0;
    return t;
  }
  float b[kBlock], f[kBlock];
  double sq = 0, bsq = 0, sabs = 0, babs = 0;
  float mx = 0;
  for (uint64_t first = 0; first < t.numel; first += kBlock) {
    const uint64_t m = std::min(kBlock, t.numel - first);
    decode_to_f32(base.dtype, base.bytes, first, {b, m});
    decode_to_f32(ft.dtype, ft.bytes, first, {f, m});
    float acc_sq[kLanes] = {}, acc_bsq[kLanes] = {}, acc_abs[kLanes] = {}, acc_babs[kLanes] = {}, acc_max[kLanes] = {};
    uint32_t acc_same[kLanes] = {}, acc_bad[kLanes] = {};
    auto accumulate = [&](int l, uint64_t i) {
      float d = f[i] - b[i];
      uint32_t fb, bb;
      std::memcpy(&fb, &f[i], 4);
      std::memcpy(&bb, &b[i], 4);
      acc_same[l] += fb == bb;  // decoded bits equal <=> stored bits equal for these dtypes
      bool finite = std::fabs(d) <= 3.4e38f;
      acc_bad[l] += !finite;
      d = finite ? d : 0.0f;
      float bv = std::fabs(b[i]) <= 3.4e38f ? b[i] : 0.0f;
      acc_sq[l] += d * d;
      acc_bsq[l] += bv * bv;
      acc_abs[l] += std::fabs(d);
      acc_babs[l] += std::fabs(bv);
      acc_max[l] = std::fabs(d) > acc_max[l] ? std::fabs(d) : acc_max[l];
    };
    uint64_t i = 0;
    for (; i + kLanes <= m; i += kLanes)
      for (int l = 0; l < kLanes; ++l) accumulate(l, i + l);
    for (; i < m; ++i) accumulate(0, i);
    for (int l = 0; l < kLanes; ++l) {
      sq += acc_sq[l];
      bsq += acc_bsq[l];
      sabs += acc_abs[l];
      babs += acc_babs[l];
      mx = std::max(mx, acc_max[l]);
      t.unchanged += acc_same[l];
      t.nonfinite += acc_bad[l];
    }
  }
  t.l2 = std::sqrt(sq);
  t.base_l2 = std::sqrt(bsq);
  t.max_abs = mx;
  uint64_t finite = t.numel - t.nonfinite;
  t.mean_abs = finite ? sabs / static_cast<double>(finite) : 0.0;
  t.base_mean_abs = t.numel ? babs / static_cast<double>(t.numel) : 0.0;
  return t;
}

std::string tensor_family(const std::string& name) {
  if (auto l = parse_layer_name(name)) return name.substr(l->rest_at);
  return name;
}

namespace {
// Adds one tensor's statistics into an aggregate row (norms in quadrature; means by count, mean|δ|
// over the finite deltas as TOTAL's and each tensor's are).
void accumulate_into(TensorDiff& agg, const TensorDiff& t) {
  const double n = static_cast<double>(agg.numel), m = static_cast<double>(t.numel);
  const double nf = static_cast<double>(agg.numel - agg.nonfinite), mf = static_cast<double>(t.numel - t.nonfinite);
  agg.l2 = std::sqrt(agg.l2 * agg.l2 + t.l2 * t.l2);
  agg.base_l2 = std::sqrt(agg.base_l2 * agg.base_l2 + t.base_l2 * t.base_l2);
  agg.mean_abs = nf + mf > 0 ? (agg.mean_abs * nf + t.mean_abs * mf) / (nf + mf) : 0;
  agg.base_mean_abs = n + m > 0 ? (agg.base_mean_abs * n + t.base_mean_abs * m) / (n + m) : 0;
  agg.max_abs = std::max(agg.max_abs, t.max_abs);
  agg.numel += t.numel;
  agg.unchanged += t.unchanged;
  agg.nonfinite += t.nonfinite;
}
}  // namespace

DiffReport run_diff(const std::string& base_path, const std::string& ft_path) {
  auto t0 = std::chrono::steady_clock::now();
  Checkpoint base(base_path);
  FinetuneInput ft(ft_path, base);  // a checkpoint or a PEFT LoRA
  check_finetune_pairs(base, ft);
  DiffReport rep;
  rep.total.name = "TOTAL";
  double sq = 0, bsq = 0, sabs = 0, babs = 0;
  uint64_t finite = 0, numeric = 0;
  for (const auto& name : base.names()) {
    TensorView bv = base.acquire(name), fv = ft.acquire(name);
    TensorDiff t = diff_tensor(bv, fv);
    base.release(name);
    ft.release(name);
    rep.input_bytes += bv.bytes.size() + fv.bytes.size();
    rep.total.numel += t.numel;
    rep.total.unchanged += t.unchanged;
    if (t.numeric) {
      rep.total.nonfinite += t.nonfinite;
      sq += t.l2 * t.l2;
      bsq += t.base_l2 * t.base_l2;
      sabs += t.mean_abs * static_cast<double>(t.numel - t.nonfinite);
      finite += t.numel - t.nonfinite;
      numeric += t.numel;
      rep.total.max_abs = std::max(rep.total.max_abs, t.max_abs);
      babs += t.base_mean_abs * static_cast<double>(t.numel);
      const std::string fam = tensor_family(t.name);
      auto it =
          std::find_if(rep.families.begin(), rep.families.end(), [&](const TensorDiff& f) { return f.name == fam; });
      if (it == rep.families.end()) {
        rep.families.push_back(TensorDiff{});
        it = rep.families.end() - 1;
        it->name = fam, it->dtype = t.dtype;
      }
      accumulate_into(*it, t);
    }
    rep.tensors.push_back(std::move(t));
  }
  rep.total.l2 = std::sqrt(sq);
  rep.total.base_l2 = std::sqrt(bsq);
  rep.total.mean_abs = finite ? sabs / static_cast<double>(finite) : 0.0;
  rep.total.base_mean_abs = numeric ? babs / static_cast<double>(numeric) : 0.0;
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
