#include "src/pipeline/apply.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "formats/adapter_h5.h"
#include "formats/checkpoint.h"
#include "src/codec/raw.h"
#include "src/codec/tensor_codec.h"
#include "src/core/atomic_output.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/pipeline/journal.h"
#include "src/pipeline/partition.h"
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

void apply_adapter_tensor(const AdapterReader& ad, const TensorView& bv, float alpha, bool force,
                          const std::string& base_path, std::vector<uint8_t>& out, std::vector<std::string>& warnings) {
  const std::string& name = bv.name;
  const uint64_t fp = fingerprint64(bv.bytes), want = ad.base_fingerprint(name);
  if (fp != want) {
    std::string msg = "tensor '" + name + "' of the base differs from the one the adapter was made from (" + ad.path() +
                      " expects fingerprint " + fingerprint_hex(want) + ", the base's is " + fingerprint_hex(fp) + ")";
    if (!force) throw Error(ErrorCode::FingerprintMismatch, base_path, msg + "; pass --force to apply anyway");
    warnings.push_back(base_path + ": " + msg);
  }
  const Json& attrs = ad.attrs(name);
  const std::string codec = attrs["codec"].get<std::string>();
  out.resize(bv.bytes.size());
  if (codec == "unchanged") {
    std::memcpy(out.data(), bv.bytes.data(), out.size());
  } else if (codec == "raw") {
    RawParts rp;
    load_raw(ad, bv, rp);
    raw_apply(bv, rp.payload, alpha, out);
  } else {
    std::vector<float> delta = decode_tensor(attrs, ad.source(name), bv.shape, bv.dtype, ad.where(name));
    add_scaled_delta(bv, {reinterpret_cast<const uint8_t*>(delta.data()), delta.size() * 4}, alpha, out);
  }
}

void check_adapter_matches_base(const Checkpoint& base, const AdapterReader& ad) {
  for (const auto& name : ad.names())
    if (!base.find(name))
      throw Error(ErrorCode::TensorSetMismatch, ad.path(),
                  "adapter has tensor '" + name + "' that the base " + base.path() + " lacks");
  for (const auto& name : base.names()) {
    if (!ad.has(name))
      throw Error(ErrorCode::TensorSetMismatch, ad.path(),
                  "adapter has no entry for base tensor '" + name + "' (made from another model?)");
    check_tensor(ad, *base.at(name).entry);
  }
}

namespace {

std::string apply_job_identity(const ApplyOptions& opt, const Checkpoint& base, const AdapterReader& ad) {
  Json j = Json::object();
  j["command"] = "apply";
  j["out"] = opt.out;
  j["alpha"] = opt.alpha;
  j["force"] = opt.force;
  j["max_shard_bytes"] = opt.max_shard_bytes;
  std::vector<std::string> paths = {ad.path()};
  for (const auto& s : base.shards()) paths.push_back(s->path());
  j["inputs"] = describe_input_files(paths);
  return j.dump(1) + "\n";
}

}  // namespace

ApplyReport run_apply(const ApplyOptions& opt) {
  SerialComm serial;
  return run_apply(opt, serial);
}

ApplyReport run_apply(const ApplyOptions& opt, Comm& comm) {
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Checkpoint> base;
  std::unique_ptr<AdapterReader> ad;
  std::vector<TensorSpec> specs;
  // the "all" phase: headers, records, pairing and output path before any tensor byte
  collectively(comm, [&] {
    if (!std::isfinite(opt.alpha)) throw Error(ErrorCode::Usage, "", "--alpha must be a finite number");
    base = std::make_unique<Checkpoint>(opt.base);
    ad = std::make_unique<AdapterReader>(opt.adapter);
    check_adapter_matches_base(*base, *ad);
    for (const auto& name : base->names()) {
      const auto& e = *base->at(name).entry;
      specs.push_back({name, e.dtype, e.shape});
    }
    const std::string inputs[] = {opt.base, opt.adapter};
    check_output_path(opt.out, inputs, opt.overwrite);
  });

  ApplyReport rep;
  const ShardPlan plan = plan_shards(specs, opt.max_shard_bytes);
  uint64_t total_bytes = 0;
  for (uint64_t b : plan.bytes) total_bytes += b;
  // the journal folder is the output under construction: finished shards are its items
  JobJournal journal(comm, opt.out, "apply", apply_job_identity(opt, *base, *ad), opt.resume);
  const PendingShards pending = pending_shards(journal, plan, comm);
  const std::vector<size_t>& todo = pending.todo;
  ProgressReporter progress(
      opt.progress, "apply", "shards", plan.shards.size(), total_bytes, [&] { return shards_done(journal, plan); },
      comm.is_root());
  // the "one" phase: one writer per shard, shards spread over the ranks by bytes
  independently(comm, [&] {
    std::vector<uint8_t> out;
    for (size_t j : pending.mine) {
      const size_t s = todo[j];
      SafetensorsWriter w(journal.item_path(plan.name(s)), plan.shards[s], {{"format", "pt"}});
      for (const auto& spec : plan.shards[s]) {
        TensorView bv = base->acquire(spec.name);
        apply_adapter_tensor(*ad, bv, opt.alpha, opt.force, opt.base, out, rep.warnings);
        w.write(out.data(), out.size());
        base->release(spec.name);
        rep.bytes_written += out.size();
        ++rep.tensors;
      }
      w.commit();
    }
    base->check_intact();
  });
  rep.complete = commit_shard_job(comm, journal, plan, progress, [&] {
    std::error_code ec;
    write_side_files(std::filesystem::is_directory(opt.base, ec) ? opt.base : std::string(), journal.dir(),
                     ad->side_files());
  });
  // totals over ranks (warnings stay with the rank that saw them: --force runs print per rank)
  uint64_t totals[2] = {rep.tensors, rep.bytes_written};
  comm.allreduce_sum(totals);
  rep.tensors = totals[0];
  rep.bytes_written = totals[1];
  rep.shards = plan.shards.size();
  rep.resumed = plan.shards.size() - todo.size();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
