#include "src/pipeline/apply.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "formats/adapter_h5.h"
#include "src/codec/tensor_codec.h"
#include "formats/checkpoint.h"
#include "src/codec/raw.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/pipeline/side_files.h"

namespace deltakit {

namespace {

// Check an adapter tensor against the base tensor it will be applied to (headers only).
void check_tensor(const AdapterReader& ad, const SafetensorsEntry& b) {
  const std::string& name = b.name;
  if (ad.dtype(name) != b.dtype)
    throw Error(ErrorCode::DtypeMismatch, ad.path(),
                "tensor '" + name + "' is " + std::string(dtype_name(ad.dtype(name))) + " in the adapter but " +
                    std::string(dtype_name(b.dtype)) + " in the base");
  if (ad.shape(name) != b.shape)
    throw Error(ErrorCode::ShapeMismatch, ad.path(),
                "tensor '" + name + "' has shape " + shape_string(ad.shape(name)) + " in the adapter but " +
                    shape_string(b.shape) + " in the base");
}

// The raw codec's parts for one tensor, every size checked against the shape before reading.
struct RawParts {
  std::vector<uint8_t> delta, exact_index, exact_bits, replacement;
  RawPayload payload;
};

void load_raw(const AdapterReader& ad, const TensorView& base, RawParts& rp) {
  const std::string& name = base.name;
  const Json& attrs = ad.attrs(name);
  AttrReader a{attrs, ad.where(name)};
  AdapterTensorSource src = ad.source(name);
  RawPayload& p = rp.payload;
  const std::string mode = a.str("raw.mode");
  if (mode == "replace") {
    p.mode = RawMode::Replace;
    rp.replacement = src.read("raw.replacement", PartKind::U8, {base.bytes.size()}, "");
    p.replacement = rp.replacement;
    return;
  }
  if (mode != "delta") a.fail("unknown raw.mode \"" + mode + "\"");
  if (!dtype_is_float_decodable(base.dtype)) a.fail("a delta on a non-float tensor");
  p.mode = RawMode::Delta;
  rp.delta = src.read("raw.delta", PartKind::F32, {base.numel()}, "");
  p.delta = rp.delta;
  const uint64_t k = a.u64("raw.exact_patches", base.numel());
  if (k) {
    rp.exact_index = src.read("raw.exact_index", PartKind::U64, {k}, "");
    rp.exact_bits = src.read("raw.exact_bits", PartKind::U8, {k * dtype_size(base.dtype)}, "");
    for (uint64_t j = 0; j < k; ++j) {
      uint64_t i;
      std::memcpy(&i, rp.exact_index.data() + j * 8, 8);
      if (i >= base.numel()) a.fail("raw.exact_index entry " + std::to_string(i) + " is out of range");
    }
    p.exact_index = rp.exact_index;
    p.exact_bits = rp.exact_bits;
  }
}

}  // namespace

ApplyReport run_apply(const ApplyOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  if (!std::isfinite(opt.alpha)) throw Error(ErrorCode::Usage, "", "--alpha must be a finite number");
  // fail fast: headers, records, pairing and output path before any tensor byte
  Checkpoint base(opt.base);
  AdapterReader ad(opt.adapter);
  for (const auto& name : ad.names())
    if (!base.find(name))
      throw Error(ErrorCode::TensorSetMismatch, ad.path(), "adapter has tensor '" + name + "' that the base " + opt.base + " lacks");
  std::vector<TensorSpec> specs;
  for (const auto& name : base.names()) {
    if (!ad.has(name))
      throw Error(ErrorCode::TensorSetMismatch, ad.path(),
                  "adapter has no entry for base tensor '" + name + "' (made from another model?)");
    const auto& e = *base.at(name).entry;
    check_tensor(ad, e);
    specs.push_back({name, e.dtype, e.shape});
  }
  const std::string inputs[] = {opt.base, opt.adapter};
  check_output_path(opt.out, inputs, opt.overwrite);

  ApplyReport rep;
  AtomicDirectory dir(opt.out);
  CheckpointWriter writer(dir.temp_dir(), specs, opt.max_shard_bytes, {{"format", "pt"}});
  std::vector<uint8_t> out;
  for (const auto& name : base.names()) {
    TensorView bv = base.acquire(name);
    const uint64_t fp = fingerprint64(bv.bytes), want = ad.base_fingerprint(name);
    if (fp != want) {
      std::string msg = "tensor '" + name + "' of the base differs from the one the adapter was made from "
                        "(fingerprint " + fingerprint_hex(fp) + ", adapter expects " + fingerprint_hex(want) + ")";
      if (!opt.force) throw Error(ErrorCode::FingerprintMismatch, opt.base, msg + "; pass --force to apply anyway");
      rep.warnings.push_back(opt.base + ": " + msg);
    }
    const Json& attrs = ad.attrs(name);
    const std::string codec = attrs["codec"].get<std::string>();
    out.resize(bv.bytes.size());
    if (codec == "unchanged") {
      std::memcpy(out.data(), bv.bytes.data(), out.size());
    } else if (codec == "raw") {
      RawParts rp;
      load_raw(ad, bv, rp);
      raw_apply(bv, rp.payload, opt.alpha, out);
    } else {
      std::vector<float> delta = decode_tensor(attrs, ad.source(name), bv.shape, bv.dtype, ad.where(name));
      add_scaled_delta(bv, {reinterpret_cast<const uint8_t*>(delta.data()), delta.size() * 4}, opt.alpha, out);
    }
    writer.write(out.data(), out.size());
    base.release(name);
    rep.bytes_written += out.size();
    ++rep.tensors;
  }
  writer.commit();
  rep.shards = writer.shard_count();
  std::error_code ec;
  write_side_files(std::filesystem::is_directory(opt.base, ec) ? opt.base : std::string(), dir.temp_dir(), ad.side_files());
  base.check_intact();
  dir.commit();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
