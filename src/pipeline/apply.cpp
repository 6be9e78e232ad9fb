#include "src/pipeline/apply.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>

#include "formats/adapter_h5.h"
#include "formats/checkpoint.h"
#include "src/codec/codec.h"
#include "src/core/atomic_output.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/pipeline/job.h"
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

}  // namespace

namespace {
void check_fingerprint_value(const AdapterReader& ad, const std::string& name, uint64_t fp,
                             const std::string& base_path, bool force, std::vector<std::string>& warnings) {
  const uint64_t want = ad.base_fingerprint(name);
  if (fp == want) return;
  std::string msg = "tensor '" + name + "' of the base differs from the one the adapter was made from (" + ad.path() +
                    " expects fingerprint " + fingerprint_hex(want) + ", the base's is " + fingerprint_hex(fp) + ")";
  if (!force) throw Error(ErrorCode::FingerprintMismatch, base_path, msg + "; pass --force to apply anyway");
  warnings.push_back(base_path + ": " + msg);
}
}  // namespace

void check_base_fingerprint(const AdapterReader& ad, const TensorView& bv, const std::string& base_path, bool force,
                            std::vector<std::string>& warnings) {
  check_fingerprint_value(ad, bv.name, fingerprint64(bv.bytes), base_path, force, warnings);
}

namespace {

// A tensor's stored form made ready for its pass: its parts read, unfiltered and loaded into a
// block decoder (none: the whole-tensor pass). Apart from the pass, so that a shard's next
// tensor is made ready beside the pass over this one.
struct ReadyTensor {
  ReadyTensor(const AdapterReader& ad, const TensorView& bv, gpu::CudaDevice* dev)
      : src(ad.source(bv.name)), st{ad.attrs(bv.name), src, ad.where(bv.name)} {
    if (!dev) blocks = block_applier_of_stored(st, bv);
  }
  const AdapterTensorSource src;
  const StoredTensor st;
  std::unique_ptr<BlockApplier> blocks;
};

void apply_ready_tensor(const AdapterReader& ad, const TensorView& bv, ReadyTensor& ready, float alpha, bool force,
                        const std::string& base_path, const TensorSink& sink, std::vector<std::string>& warnings,
                        gpu::CudaDevice* dev) {
  const std::string& name = bv.name;
  const std::unique_ptr<BlockApplier>& blocks = ready.blocks;
  if (!blocks) {  // the whole tensor at once: the GPU's pass, stored forms without a block path
    check_base_fingerprint(ad, bv, base_path, force, warnings);
    std::vector<uint8_t> out(bv.bytes.size());
    gpu::decode_add_on(dev, ready.st, bv, alpha, out);
    sink(out);
    return;
  }
  // Blocks of the base read by pread (the mapping untouched), fingerprinted as they pass, decoded,
  // added and handed on: memory is a few blocks whatever the tensor's size. The fingerprint is
  // known only at the end, so a wrong base fails after its bytes went to the (temporary) output.
  constexpr uint64_t kBlock = 1 << 16;
  const uint64_t n = bv.numel();
  const size_t es = dtype_size(bv.dtype);
  std::vector<uint8_t> in(std::min(n, kBlock) * es), out(in.size());
  Fingerprinter fp;
  for (uint64_t first = 0; first < n; first += kBlock) {
    const uint64_t m = std::min(kBlock, n - first);
    const std::span<uint8_t> b(in.data(), m * es), o(out.data(), m * es);
    read_elements(bv, first, m, b.data());
    fp.add(b);
    blocks->apply(first, b, alpha, o);
    sink(o);
  }
  check_fingerprint_value(ad, name, fp.value(), base_path, force, warnings);
}

}  // namespace

void apply_adapter_tensor(const AdapterReader& ad, const TensorView& bv, float alpha, bool force,
                          const std::string& base_path, const TensorSink& sink, std::vector<std::string>& warnings,
                          gpu::CudaDevice* dev) {
  ReadyTensor ready(ad, bv, dev);
  apply_ready_tensor(ad, bv, ready, alpha, force, base_path, sink, warnings, dev);
}

void apply_adapter_tensor(const AdapterReader& ad, const TensorView& bv, float alpha, bool force,
                          const std::string& base_path, std::vector<uint8_t>& out, std::vector<std::string>& warnings,
                          gpu::CudaDevice* dev) {
  out.resize(bv.bytes.size());
  size_t at = 0;
  apply_adapter_tensor(
      ad, bv, alpha, force, base_path,
      [&](std::span<const uint8_t> b) {
        std::memcpy(out.data() + at, b.data(), b.size());
        at += b.size();
      },
      warnings, dev);
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

ApplyReport run_apply(const ApplyOptions& opt) {
  SerialComm serial;
  return run_apply(opt, serial);
}

ApplyReport run_apply(const ApplyOptions& opt, Comm& comm) {
  auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Checkpoint> base;
  std::unique_ptr<AdapterReader> ad;
  std::vector<TensorSpec> specs;
  std::unique_ptr<gpu::DevicePool> devices;  // --device cuda: one per worker (empty: the CPU)
  // the "all" phase: headers, records, pairing and output path before any tensor byte
  collectively(comm, [&] {
    if (!std::isfinite(opt.alpha)) throw Error(ErrorCode::Usage, "", "--alpha must be a finite number");
    devices = std::make_unique<gpu::DevicePool>(opt.device);
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
  JobSpec spec{"apply",      opt.out,           opt.resume, opt.progress, "shards", nlohmann::json::object(),
               {ad->path()}, shard_items(plan), {}};
  spec.identity["alpha"] = opt.alpha;
  spec.identity["force"] = opt.force;
  spec.identity["max_shard_bytes"] = opt.max_shard_bytes;
  for (const auto& s : base->shards()) spec.input_files.push_back(s->path());
  Job job(comm, std::move(spec));
  // one writer per shard, shards spread over the ranks by bytes, and a rank's threads each take
  // a shard (on a GPU, two workers: one's copies overlap the other's kernels)
  const unsigned threads = opt.threads ? opt.threads : default_threads_per_rank(comm);
  const unsigned workers = devices->gpu() ? std::min(threads, gpu::DevicePool::kWorkersPerGpu) : threads;
  if (const std::string w = threads_warning(workers); !w.empty() && comm.is_root()) rep.warnings.push_back(w);
  std::mutex report_mutex;
  std::map<size_t, std::vector<std::string>> warnings_of;  // per shard, reported in shard order
  job.run_items(
      [&](size_t s, const std::string& path) {
        SafetensorsWriter w(path, plan.shards[s], {{"format", "pt"}});
        const gpu::DevicePool::Lease device = devices->take();
        uint64_t written = 0;
        std::vector<std::string> warnings;
        const std::vector<TensorSpec>& tensors = plan.shards[s];
        // not populated: the block pass reads the base by pread; a whole-tensor pass faults it in
        auto view = [&](size_t k) { return base->acquire(tensors[k].name, /*populate=*/false); };
        // the next tensor's stored form read and decoded by a helper while this one streams (on
        // the CPU, and where that tensor is at most kReadyAhead: memory stays a tensor's parts)
        constexpr uint64_t kReadyAhead = uint64_t{64} << 20;
        auto ahead = [&](size_t k) {
          std::future<std::unique_ptr<ReadyTensor>> f;
          if (k < tensors.size() && !device.get() && tensors[k].nbytes() <= kReadyAhead)
            f = std::async(std::launch::async,
                           [&, bv = view(k)] { return std::make_unique<ReadyTensor>(*ad, bv, nullptr); });
          return f;
        };
        std::future<std::unique_ptr<ReadyTensor>> next = ahead(0);
        for (size_t k = 0; k < tensors.size(); ++k) {
          TensorView bv = view(k);
          std::unique_ptr<ReadyTensor> ready =
              next.valid() ? next.get() : std::make_unique<ReadyTensor>(*ad, bv, device.get());
          next = ahead(k + 1);
          apply_ready_tensor(
              *ad, bv, *ready, opt.alpha, opt.force, opt.base,
              [&](std::span<const uint8_t> b) {
                w.write(b.data(), b.size());
                written += b.size();
              },
              warnings, device.get());
          base->release(tensors[k].name);
        }
        w.commit();
        std::lock_guard<std::mutex> lock(report_mutex);
        rep.tensors += plan.shards[s].size(), rep.bytes_written += written;
        warnings_of[s] = std::move(warnings);
      },
      {}, [&] { base->check_intact(); }, workers);
  for (auto& [s, warnings] : warnings_of) rep.warnings.insert(rep.warnings.end(), warnings.begin(), warnings.end());
  rep.complete = job.commit([&](JobJournal& journal) {
    make_checkpoint_folder(journal, plan, [&] {
      std::error_code ec;
      write_side_files(std::filesystem::is_directory(opt.base, ec) ? opt.base : std::string(), journal.dir(),
                       ad->side_files());
    });
  });
  // totals over ranks (warnings stay with the rank that saw them: --force runs print per rank)
  uint64_t totals[2] = {rep.tensors, rep.bytes_written};
  comm.allreduce_sum(totals);
  rep.tensors = totals[0];
  rep.bytes_written = totals[1];
  rep.shards = plan.shards.size();
  rep.resumed = job.resumed();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
