#include "src/pipeline/apply.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "formats/adapter_file.h"
#include "formats/checkpoint.h"
#include "src/codec/raw.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/pipeline/side_files.h"

namespace deltakit {

namespace {
using Json = nlohmann::ordered_json;

// Check an adapter record against the base tensor it will be applied to (headers only).
void check_record(const AdapterReader& ad, const Json& rec, const SafetensorsEntry& b) {
  const std::string& name = b.name;
  if (rec["dtype"].get<std::string>() != dtype_name(b.dtype))
    throw Error(ErrorCode::DtypeMismatch, ad.path(),
                "tensor '" + name + "' is " + rec["dtype"].get<std::string>() + " in the adapter but " +
                    std::string(dtype_name(b.dtype)) + " in the base");
  if (rec["shape"].get<std::vector<uint64_t>>() != b.shape)
    throw Error(ErrorCode::ShapeMismatch, ad.path(),
                "tensor '" + name + "' has shape " + shape_string(rec["shape"].get<std::vector<uint64_t>>()) +
                    " in the adapter but " + shape_string(b.shape) + " in the base");
  if (rec["codec"] != "raw")
    throw Error(ErrorCode::AdapterInvalid, ad.path(), "tensor '" + name + "' uses unknown codec " + rec["codec"].dump());
  if (!rec.contains("mode") || !rec["mode"].is_string() || !rec.contains("base_fingerprint") ||
      !rec["base_fingerprint"].is_string())
    throw Error(ErrorCode::AdapterInvalid, ad.path(), "tensor '" + name + "' record lacks mode/base_fingerprint");
}

// Views of the raw codec's parts for one tensor, every size checked against the shape.
RawPayload load_raw(const AdapterReader& ad, const Json& rec, const TensorView& base) {
  RawPayload p;
  const std::string mode = rec["mode"].get<std::string>();
  const std::string& name = base.name;
  auto bad = [&](const std::string& what) { return Error(ErrorCode::AdapterInvalid, ad.path(), "tensor '" + name + "': " + what); };
  if (mode == "unchanged") return p;
  if (mode == "replace") {
    p.mode = RawMode::Replace;
    p.replacement = ad.part(name, "replacement", base.dtype).bytes;
    if (p.replacement.size() != base.bytes.size()) throw bad("replacement payload has the wrong size");
    return p;
  }
  if (mode != "delta") throw bad("unknown raw mode \"" + mode + "\"");
  if (!dtype_is_float_decodable(base.dtype)) throw bad("a delta on a non-float tensor");
  p.mode = RawMode::Delta;
  p.delta = ad.part(name, "delta", DType::F32).bytes;
  if (p.delta.size() != base.numel() * 4) throw bad("delta payload does not match the shape");
  const auto& parts = rec["parts"];
  if (std::find(parts.begin(), parts.end(), "exact_index") != parts.end()) {
    TensorView iv = ad.part(name, "exact_index", DType::U64);
    TensorView bv = ad.part(name, "exact_bits", base.dtype);
    if (bv.numel() != iv.numel()) throw bad("exact_index and exact_bits differ in length");
    for (uint64_t j = 0; j < iv.numel(); ++j) {
      uint64_t i;
      std::memcpy(&i, iv.bytes.data() + j * 8, 8);
      if (i >= base.numel()) throw bad("exact_index entry " + std::to_string(i) + " is out of range");
    }
    p.exact_index = iv.bytes;
    p.exact_bits = bv.bytes;
  }
  return p;
}
}  // namespace

ApplyReport run_apply(const ApplyOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  if (!std::isfinite(opt.alpha)) throw Error(ErrorCode::Usage, "", "--alpha must be a finite number");
  // fail fast: headers, records, pairing and output path before any tensor byte
  Checkpoint base(opt.base);
  AdapterReader ad(opt.adapter);
  for (const auto& rec : ad.records())
    if (!base.find(rec["name"].get<std::string>()))
      throw Error(ErrorCode::TensorSetMismatch, ad.path(),
                  "adapter has tensor '" + rec["name"].get<std::string>() + "' that the base " + opt.base + " lacks");
  std::vector<TensorSpec> specs;
  for (const auto& name : base.names()) {
    const Json* rec = ad.record(name);
    if (!rec)
      throw Error(ErrorCode::TensorSetMismatch, ad.path(),
                  "adapter has no entry for base tensor '" + name + "' (made from another model?)");
    const auto& e = *base.at(name).entry;
    check_record(ad, *rec, e);
    specs.push_back({name, e.dtype, e.shape});
  }
  const std::string inputs[] = {opt.base, opt.adapter};
  check_output_path(opt.out, inputs, opt.overwrite);

  ApplyReport rep;
  AtomicDirectory dir(opt.out);
  CheckpointWriter writer(dir.temp_dir(), specs, opt.max_shard_bytes, {{"format", "pt"}});
  std::vector<uint8_t> out;
  for (const auto& name : base.names()) {
    const Json& rec = *ad.record(name);
    TensorView bv = base.acquire(name);
    std::string fp = fingerprint_hex(fingerprint64(bv.bytes));
    if (fp != rec["base_fingerprint"].get<std::string>()) {
      std::string msg = "tensor '" + name + "' of the base differs from the one the adapter was made from "
                        "(fingerprint " + fp + ", adapter expects " + rec["base_fingerprint"].get<std::string>() + ")";
      if (!opt.force) throw Error(ErrorCode::FingerprintMismatch, opt.base, msg + "; pass --force to apply anyway");
      rep.warnings.push_back(opt.base + ": " + msg);
    }
    RawPayload payload = load_raw(ad, rec, bv);
    out.resize(bv.bytes.size());
    raw_apply(bv, payload, opt.alpha, out);
    writer.write(out.data(), out.size());
    base.release(name);
    ad.release(name);
    rep.bytes_written += out.size();
    ++rep.tensors;
  }
  writer.commit();
  rep.shards = writer.shard_count();
  std::error_code ec;
  write_side_files(std::filesystem::is_directory(opt.base, ec) ? opt.base : std::string(), dir.temp_dir(), ad.side_files());
  base.check_intact();
  ad.check_intact();
  dir.commit();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
