#include "src/pipeline/compress.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "formats/adapter_h5.h"
#include "formats/checkpoint.h"
#include "formats/h5_chunks.h"
#include "formats/safetensors.h"
#include "src/codec/cherry_stream.h"
#include "src/codec/codec.h"
#include "src/codec/split_pass.h"
#include "src/codec/tensor_codec.h"
#include "src/core/atomic_output.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/core/half.h"
#include "src/core/whole_file.h"
#include "src/pipeline/finetune_input.h"
#include "src/pipeline/global_cut.h"
#include "src/pipeline/importance_files.h"
#include "src/pipeline/job.h"
#include "src/pipeline/journal_part.h"
#include "src/pipeline/pair_check.h"
#include "src/pipeline/partition.h"
#include "src/pipeline/recipe_rules.h"
#include "src/pipeline/record_queue.h"
#include "src/pipeline/side_files.h"
#include "src/pipeline/stitch_ahead.h"

namespace deltakit {

namespace {

// One tensor read, compared and, for a lossy recipe, its δ computed (src/codec/codec.h).
struct PreparedTensor {
  TensorView bv, fv;
  const Recipe* recipe = nullptr;
  PreparedDelta prepared;
  std::vector<float> importance;
  bool lossy() const { return prepared.lossy(*recipe); }
  TensorPair pair(const std::string& name, unsigned threads) const {
    TensorPair t{name, bv, fv, recipe, &prepared, {}, threads, nullptr, nullptr, ""};
    if (recipe->cherry && recipe->cherry->importance != "magnitude")
      t.importance = {
          recipe->cherry->importance == "fisher" ? Importance::Kind::PerElement : Importance::Kind::PerColumn,
          importance};
    return t;
  }
};

// Everything the ranks share: the inputs, opened and checked, and the plan.
struct CompressJob {
  const CompressOptions& opt;
  Comm& comm;
  unsigned threads;
  RecipeRules rules;
  std::unique_ptr<Checkpoint> base;
  std::unique_ptr<FinetuneInput> ft;  // a checkpoint or a PEFT LoRA
  std::vector<std::string> names;
  ImportanceFiles importance;
  std::vector<ScoreCut> cuts;  // per tensor, for recipes with a scope=model stage
  std::vector<bool> has_cut;
  // per tensor, what its cut keeps where the cut's search held it (taken by the tensor's encode)
  std::vector<std::optional<CutSelection>> selections{};
  std::unique_ptr<gpu::DevicePool> devices;  // --device cuda: one per worker (empty: the CPU)
  unsigned item_threads = 1;                 // per tensor, where the rank's threads take tensors at once

  // The rank's threads, each taking whole tensors; on a GPU, two (one's copies overlap the
  // other's kernels)
  unsigned workers() const { return devices->gpu() ? std::min(threads, gpu::DevicePool::kWorkersPerGpu) : threads; }

  static std::string item(size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "t%07zu.part", i);
    return buf;
  }

  // Tensors split into row blocks that the ranks and threads share (src/codec/split_pass.h): per
  // tensor its blocks' row starts, then its rows; empty for a tensor encoded whole. A block's
  // item is its pass's share in the journal; the last of a tensor's items to finish joins them
  // (join_if_last), else rank 0's stitch does.
  std::vector<std::vector<uint64_t>> splits{};
  static constexpr size_t kWhole = SIZE_MAX, kFingerprint = SIZE_MAX - 1;
  struct ItemRef {
    size_t tensor, block;  // block: kWhole for a tensor encoded whole; kFingerprint for a split
                           // tensor's base fingerprint (one more item, so it runs beside the blocks)
  };
  std::vector<ItemRef> items{};
  static std::string block_item(size_t i, size_t k) {
    char buf[64];
    if (k == kFingerprint)
      std::snprintf(buf, sizeof buf, "t%07zu.fp", i);
    else
      std::snprintf(buf, sizeof buf, "t%07zu.b%04zu.blk", i, k);
    return buf;
  }

  void plan_splits() {
    splits.assign(names.size(), {});
    // the CPU's pass only (a GPU holds its tensor whole); a LoRA's δ is one product per tensor
    const bool automatic = opt.split_mb < 0;
    const auto limit = static_cast<uint64_t>((automatic ? 256 : opt.split_mb) * (1 << 20));
    if (limit == 0 || devices->gpu() || ft->lora()) return;
    // auto: only a tensor larger than one worker's share of the model's bytes (the other workers
    // would wait for it); the bytes are the same whatever splits, so the rule may use the ranks
    uint64_t total = 0;
    for (const auto& name : names) total += ft->entry(name).nbytes();
    const uint64_t share = automatic ? total / (static_cast<uint64_t>(comm.size()) * workers()) : 0;
    for (size_t i = 0; i < names.size(); ++i) {
      const SafetensorsEntry& e = ft->entry(names[i]);
      uint64_t n = 1;
      for (uint64_t d : e.shape) n *= d;
      const uint64_t cols = e.shape.empty() ? 1 : e.shape.back();
      if (n == 0 || cols == 0 || n * 4 <= limit || e.nbytes() <= share || !dtype_is_float_decodable(e.dtype)) continue;
      const Recipe& r = rules.for_tensor(names[i]);
      if (!recipe_unsuitable(r, e.dtype, e.shape).empty()) continue;
      std::vector<uint64_t> starts = split_blocks(r, n / cols, cols, limit / 4 / cols);
      if (starts.size() > 2) splits[i] = std::move(starts);
    }
  }

  // One block's pass (or the base's fingerprint) into its journal file (whole, or not there).
  void encode_block(size_t i, size_t k, const std::string& path) {
    const std::string& name = names[i];
    const TensorView bv = base->acquire(name, false);
    std::vector<uint8_t> bytes;
    if (k == kFingerprint) {
      const uint64_t fp = fingerprint_by_read(bv);
      bytes.assign(reinterpret_cast<const uint8_t*>(&fp), reinterpret_cast<const uint8_t*>(&fp) + 8);
    } else {
      bytes = block_pass_bytes(
          block_pass(rules.for_tensor(name), bv, ft->acquire(name, false), splits[i][k], splits[i][k + 1]));
    }
    AtomicFile out(path);
    out.write(bytes.data(), bytes.size());
    out.commit();
    join_if_last(i);
  }

  // The item that finds every share of its tensor in the journal once its own is there joins
  // them, so the joins run beside the other items rather than in rank 0's stitch. Two that finish
  // at once may both join (each renames the same bytes into place); where none saw them all (a
  // file of another node's rank not visible yet), the stitch joins.
  const JobJournal* journal = nullptr;
  void join_if_last(size_t i) {
    for (size_t k = 0; k + 1 < splits[i].size(); ++k)
      if (!std::filesystem::exists(journal->item_path(block_item(i, k)))) return;
    if (!std::filesystem::exists(journal->item_path(block_item(i, kFingerprint)))) return;
    join_into_part(i, *journal);
  }

  // A split tensor's prepared δ, from its blocks' shares in the journal.
  PreparedTensor join_blocks(size_t i, const JobJournal& journal) {
    const std::string& name = names[i];
    const std::vector<uint64_t>& starts = splits[i];
    PreparedTensor p;
    p.recipe = &rules.for_tensor(name);
    p.bv = base->acquire(name, false);
    p.fv = ft->acquire(name, false);
    const uint64_t cols = p.fv.cols();
    BlockJoiner joined(*p.recipe, p.fv);  // a block at a time: one block's share beside the whole
    for (size_t k = 0; k + 1 < starts.size(); ++k) {
      const std::string path = journal.item_path(block_item(i, k));
      const uint64_t rows = starts[k + 1] - starts[k];
      const std::string bytes = read_whole_file(path, "a split block", rows * cols * 2 + (1 << 20));
      joined.add(block_pass_from_bytes({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, *p.recipe, rows,
                                       cols, path));
    }
    p.prepared = joined.finish();
    const std::string fp_path = journal.item_path(block_item(i, kFingerprint));
    const std::string fp = read_whole_file(fp_path, "a split tensor's fingerprint", 8);
    if (fp.size() != 8)
      throw Error(ErrorCode::AdapterInvalid, fp_path, "a fingerprint is 8 bytes, not " + std::to_string(fp.size()));
    p.prepared.base_fingerprint = 0;
    std::memcpy(&*p.prepared.base_fingerprint, fp.data(), 8);
    return p;
  }

  PreparedTensor prepare(size_t i) {
    const std::string& name = names[i];
    PreparedTensor p;
    p.recipe = &rules.for_tensor(name);
    // a lossy recipe's fused pass reads both by pread, so their pages are not mapped up front
    const bool populate = p.recipe->is_raw();
    p.bv = base->acquire(name, populate);
    p.fv = ft->acquire(name, populate);
    if (std::optional<PreparedDelta> done = take_prepared(i))
      p.prepared = std::move(*done);
    else if (std::span<const float> exact = ft->held_lora_delta(name); !exact.empty())
      p.prepared = prepare_given_delta(*p.recipe, p.fv, exact);
    else
      p.prepared = gpu::prepare_delta_on(devices->take().get(), *p.recipe, p.bv, p.fv);
    if (p.lossy() && p.recipe->cherry && p.recipe->cherry->importance != "magnitude")
      p.importance = importance.load(*p.recipe->cherry, name, p.fv.numel(), p.fv.cols());
    return p;
  }

  // A cherry's fused pass after the scoring, its statistics pass done (BitDelta's sums and sign
  // bits, n/8 bytes), kept for the encode pass — up to 256 MB in all — so that pass need not read
  // the pair for them again.
  std::mutex prepared_mutex{};
  std::map<size_t, PreparedDelta> prepared_kept{};
  uint64_t prepared_bytes = 0;
  void keep_prepared(size_t i, PreparedDelta p, uint64_t bytes) {
    std::lock_guard<std::mutex> lock(prepared_mutex);
    if (prepared_kept.count(i) || prepared_bytes + bytes > (uint64_t{256} << 20)) return;
    prepared_bytes += bytes;
    prepared_kept.emplace(i, std::move(p));
  }
  std::optional<PreparedDelta> take_prepared(size_t i) {
    std::lock_guard<std::mutex> lock(prepared_mutex);
    auto it = prepared_kept.find(i);
    if (it == prepared_kept.end()) return std::nullopt;
    std::optional<PreparedDelta> p = std::move(it->second);
    prepared_kept.erase(it);
    return p;
  }

  void release(size_t i) {
    base->release(names[i]);
    ft->release(names[i]);
  }

  // Model-wide budgets: one exact distributed top-k per distinct scope=model stage.
  void find_cuts() {
    cuts.assign(names.size(), ScoreCut{});
    has_cut.assign(names.size(), false);
    selections.assign(names.size(), std::nullopt);
    std::map<std::string, std::vector<size_t>> pools;
    for (size_t i = 0; i < names.size(); ++i) {
      std::string key = model_scope_key(rules.for_tensor(names[i]));
      if (!key.empty()) pools[key].push_back(i);
    }
    for (const auto& entry : pools) {
      const std::string& key = entry.first;  // not a structured binding: lambdas below capture it
      const std::vector<size_t>& pool = entry.second;
      std::vector<uint64_t> bytes, sizes;
      uint64_t elements = 0;
      for (size_t i : pool) {
        const SafetensorsEntry& e = ft->entry(names[i]);
        bytes.push_back(e.nbytes());
        uint64_t n = 1;
        for (uint64_t d : e.shape) n *= d;
        sizes.push_back(n);
        elements += n;
      }
      const Recipe& recipe = rules.for_tensor(names[pool[0]]);
      auto local = items_of(partition_by_bytes(bytes, comm.size()), comm.rank());
      // progress of this phase: rank 0's own tensors (ranks hold about equal bytes), two passes
      std::atomic<uint64_t> scored{0}, scored_bytes{0};
      uint64_t local_bytes = 0;
      for (size_t j : local) local_bytes += bytes[j];
      ProgressReporter progress(
          opt.progress, "scoring for " + key + " (rank 0's share, up to 2 passes)", "tensor passes", 2 * local.size(),
          2 * local_bytes,
          [&] {
            return ProgressCount{scored.load(), scored_bytes.load()};
          },
          comm.is_root());
      auto scores_of = [&](size_t j, const ScoreVisitor& visit) {
        PreparedTensor p = prepare(pool[j]);
        if (p.lossy() && p.prepared.stream) {  // a cherry's fused pass
          auto& cherry = dynamic_cast<CherryBlockEncoder&>(*p.prepared.stream);
          if (visit.some && cherry.has_kept_scores())  // those its statistics pass kept
            cherry.kept_scores(visit.some);
          else  // every score, reading the pair again
            streamed_cherry_scores(p.bv, p.fv, cherry, p.pair(names[pool[j]], 1).importance, visit.block);
          keep_prepared(pool[j], std::move(p.prepared), p.fv.numel() / 8 + 4096);
        } else if (p.lossy()) {
          visit.block(model_scope_scores(*p.recipe, chain_input(p.pair(names[pool[j]], 1))), {});
        }  // unchanged, or raw standing in: no scores (it keeps nothing)
        release(pool[j]);
        ++scored;
        scored_bytes += bytes[j];
      };
      // the rank's workers score tensors side by side, as they encode them
      GlobalCutOptions cut_opt;
      cut_opt.pool_sizes = sizes, cut_opt.threads = workers();
      GlobalCut found =
          find_global_cut(comm, pool.size(), local, model_scope_budget(recipe, elements), scores_of, cut_opt);
      progress.finish();
      for (size_t j = 0; j < pool.size(); ++j) cuts[pool[j]] = found.cuts[j], has_cut[pool[j]] = true;
      for (size_t j = 0; j < local.size(); ++j) selections[pool[local[j]]] = std::move(found.selected[j]);
    }
  }

  Json root_attrs(uint64_t tensor_count, const std::string& fingerprints) const {
    Json root = Json::object();
    root["recipe"] = rules.summary();
    root["rules"] = rules.to_json().dump();
    root["seed"] = opt.seed;
    root["deltakit_version"] = DELTAKIT_VERSION;
    root["base"] = opt.base;
    root["finetuned"] = opt.finetuned;
    root["tensor_count"] = tensor_count;
    root["base_fingerprint"] =
        fingerprint_hex(fingerprint64({reinterpret_cast<const uint8_t*>(fingerprints.data()), fingerprints.size()}));
    return root;
  }

  // A tensor encoded: its attributes, its parts through the filter pipeline, its report.
  struct EncodedItem {
    Json attrs;
    std::vector<FilteredPart> parts;
    CompressTensorReport report;
    uint64_t base_fingerprint = 0;
  };

  // Encodes tensor i into its record in the journal.
  void encode(size_t i, const std::string& path) {
    PreparedTensor p = prepare(i);
    write_part(i, encode_prepared(i, p, path), path);
  }

  // A split tensor's record, from its blocks' shares: the same record as unsplit, so the
  // stitch copies it as it copies the others (and the adapter is the same bytes).
  void join_into_part(size_t i, const JobJournal& journal) {
    const std::string path = journal.item_path(item(i));
    PreparedTensor p = join_blocks(i, journal);
    write_part(i, encode_prepared(i, p, path), path);
  }

  // the tensor's record (src/pipeline/journal_part.h): its chunks as they will lie in the adapter
  // (its report's stored_bytes is the stitch's to set, from the adapter); on rank 0 the stitch
  // is offered it from memory first
  std::function<void(size_t, std::shared_ptr<const HeldRecord>)> offer{};
  void write_part(size_t i, EncodedItem e, const std::string& path) {
    auto rec = std::make_shared<const HeldRecord>(HeldRecord{
        {names[i], std::move(e.attrs), nlohmann::json(e.report).dump(), e.base_fingerprint}, std::move(e.parts)});
    if (offer) offer(i, rec);
    if (records)
      records->push(path, std::move(rec));
    else
      write_journal_part(path, rec->tensor, rec->parts);
  }
  RecordQueue* records = nullptr;  // the items phase's: records written behind the encoders

  // `where` names the output in the filter's errors.
  EncodedItem encode_prepared(size_t i, PreparedTensor& p, const std::string& where) {
    const std::string& name = names[i];
    const TensorView &bv = p.bv, &fv = p.fv;
    TensorPair pair = p.pair(name, item_threads);
    if (has_cut[i]) pair.cut = &cuts[i];
    if (selections[i]) pair.selection = &*selections[i];
    pair.where = opt.out + ": tensor '" + name + "'";
    EncodedTensor e = encode_tensor_pair(pair);
    if (selections[i]) selections[i].reset();  // spent
    CompressTensorReport tr;
    tr.name = name;
    tr.numel = fv.numel();
    tr.input_bytes = fv.bytes.size();
    tr.fallback = p.prepared.fallback;
    tr.codec = e.stats.codec;
    tr.exact_patches = e.stats.exact_patches;
    tr.nonfinite = e.stats.nonfinite;
    tr.rel_error = e.stats.rel_error;
    tr.delta_sq = e.stats.delta_sq;
    const uint64_t fp = p.prepared.base_fingerprint ? *p.prepared.base_fingerprint : fingerprint64(bv.bytes);
    Json attrs = Json::object();
    attrs["dtype"] = std::string(dtype_name(fv.dtype));
    attrs["shape"] = fv.shape;
    attrs["base_fingerprint"] = fp;
    for (auto& [k, v] : e.encoded.attrs.items()) attrs[k] = v;
    attrs["rel_error"] = tr.rel_error;
    release(i);
    // compressed outside the HDF5 lock, so the workers' zstd runs at once; HDF5 only places it
    EncodedItem out{std::move(attrs), {}, std::move(tr), fp};
    for (const Part& part : e.encoded.parts) out.parts.push_back(filter_part(part, opt.zstd_level, where));
    return out;
  }
};

// Bytes free on the output's file system (ec set where that cannot be known).
uint64_t free_beside(const std::string& out, std::error_code& ec) {
  const std::filesystem::path dir = std::filesystem::path(out).parent_path();
  return std::filesystem::space(dir.empty() ? "." : dir, ec).available;
}

// The stitched adapter takes about what the records take. Refuse up front if the disk cannot
// hold what is left to place: HDF5 1.10 cannot close a file whose flush hit a full disk, so
// rather than fail there we fail here, cleanly (a disk that fills in the meantime still ends in
// an error, and the temporary is still removed). Records from tensor `from` on count, and the
// block shares not yet joined into one.
void check_free_space(const std::string& out, const JobJournal& journal, size_t from) {
  uint64_t need = 1 << 20;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(journal.dir(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 8 && name[0] == 't' && std::strtoull(name.c_str() + 1, nullptr, 10) < from) continue;
    need += e.file_size(ec);
  }
  const uint64_t available = free_beside(out, ec);
  if (!ec && available < need)
    throw Error(ErrorCode::Io, out,
                "not enough free space to write the adapter: it needs about " + std::to_string(need >> 20) + " MiB, " +
                    std::to_string(available >> 20) + " MiB are free (No space left on device)");
}

// DELTAKIT_STITCH_AHEAD=0 leaves the whole stitch to the commit (as before the thread; for
// comparing the two).
bool stitch_ahead_enabled() {
  const char* v = std::getenv("DELTAKIT_STITCH_AHEAD");
  return !v || std::string(v) != "0";
}

// Rank 0's adapter, assembled from the journal's records in the tensors' order: each record's
// sizes and checksum checked, its chunks placed as they are, its report summed into the job's.
// Rank 0's own records come from memory where its workers offered them (up to kHeldCap bytes
// held at once; beyond that, and for the other ranks' records, from the journal's files).
struct AdapterAssembly {
  static constexpr uint64_t kHeldCap = uint64_t{16} << 20;
  const CompressOptions& opt;
  const std::vector<std::string>& names;
  const JobJournal& journal;
  CompressReport& rep;
  AdapterWriter writer;
  std::map<std::string, uint64_t> fallbacks{};
  std::string fingerprints{};
  double err_sq = 0, total_sq = 0;
  std::mutex held_mutex{};
  std::map<size_t, std::shared_ptr<const HeldRecord>> held{};
  uint64_t held_bytes = 0;
  size_t placed = 0;  // records 0 .. placed-1 are in the adapter

  AdapterAssembly(const CompressOptions& o, const std::vector<std::string>& n, const JobJournal& j, CompressReport& r)
      : opt(o), names(n), journal(j), rep(r), writer(o.out, o.zstd_level, j.dir()) {}

  std::string record(size_t i) const { return journal.item_path(CompressJob::item(i)); }

  void offer(size_t i, std::shared_ptr<const HeldRecord> rec) {
    std::lock_guard<std::mutex> lock(held_mutex);
    const uint64_t n = rec->bytes();
    if (i < placed || held_bytes + n > kHeldCap) return;
    held_bytes += n;
    held.emplace(i, std::move(rec));
  }

  std::shared_ptr<const HeldRecord> take(size_t i) {
    std::lock_guard<std::mutex> lock(held_mutex);
    auto it = held.find(i);
    if (it == held.end()) return nullptr;
    auto rec = std::move(it->second);
    held.erase(it);
    held_bytes -= rec->bytes();
    return rec;
  }

  // Record i is held or in the journal, and (placed while the ranks still write theirs) the
  // disk has room for it beside them; otherwise the commit places it after its free-space check.
  bool ready_ahead(size_t i) {
    uint64_t bytes = 0;
    {
      std::lock_guard<std::mutex> lock(held_mutex);
      if (auto it = held.find(i); it != held.end()) bytes = it->second->bytes();
    }
    std::error_code ec;
    if (!bytes) bytes = std::filesystem::file_size(record(i), ec);
    if (ec) return false;
    const uint64_t available = free_beside(opt.out, ec);
    return !ec && available >= bytes + (16u << 20);
  }

  void place(size_t i) {
    if (auto rec = take(i)) {
      add(i, rec->tensor, [&] {
        std::lock_guard<std::recursive_mutex> lock(h5_lock());
        return writer.add_tensor(names[i], rec->tensor.attrs, rec->parts);
      });
    } else {
      const std::string path = record(i);
      JournalPartReader part(path);
      if (part.tensor().name != names[i])
        throw Error(ErrorCode::AdapterInvalid, path, "journal part does not hold tensor '" + names[i] + "'");
      std::vector<size_t> counts;
      for (size_t p = 0; p < part.layouts().size(); ++p) counts.push_back(part.chunk_count(p));
      add(i, part.tensor(), [&] {
        std::lock_guard<std::recursive_mutex> lock(h5_lock());
        return writer.add_tensor(names[i], part.tensor().attrs, part.layouts(), counts,
                                 [&](size_t p, size_t c) { return part.chunk(p, c); });
      });
    }
    std::lock_guard<std::mutex> lock(held_mutex);
    placed = i + 1;
  }

  // the record's report into the job's, around `write` placing its chunks
  void add(size_t i, const JournalPart& t, const std::function<uint64_t()>& write) {
    const auto r = nlohmann::json::parse(t.report, nullptr, false);
    if (!r.is_object()) throw Error(ErrorCode::AdapterInvalid, record(i), "journal part has no valid report");
    CompressTensorReport tr = r.get<CompressTensorReport>();
    tr.name = names[i];
    err_sq += tr.rel_error * tr.rel_error * tr.delta_sq;
    total_sq += tr.delta_sq;
    fingerprints.append(reinterpret_cast<const char*>(&t.base_fingerprint), 8);
    tr.stored_bytes = write();
    if (!tr.fallback.empty()) ++fallbacks[tr.fallback];
    if (tr.nonfinite)
      rep.warnings.push_back(opt.finetuned + ": tensor '" + names[i] + "' has " + std::to_string(tr.nonfinite) +
                             " NaN/Inf entries (carried exactly by raw)");
    rep.input_bytes += tr.input_bytes;
    rep.tensors.push_back(std::move(tr));
  }
};

}  // namespace

CompressReport run_compress(const CompressOptions& opt) {
  SerialComm serial;
  return run_compress(opt, serial);
}

namespace {

// The undistilled adapter --distill starts from: gone when the job ends, however it ends.
struct RemovedAtExit {
  std::string path;
  ~RemovedAtExit() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
  }
};

CompressReport compress_adapter(const CompressOptions& opt, Comm& comm);

// compress into a hidden file beside the output, then distill its scales into the output
CompressReport compress_and_distill(const CompressOptions& opt, Comm& comm) {
  collectively(comm, [&] {
    const std::string inputs[] = {opt.base, opt.finetuned};
    check_output_file_path(opt.out, inputs, opt.overwrite);
    if (is_peft_lora_folder(opt.finetuned))
      throw Error(ErrorCode::Usage, opt.finetuned,
                  "--distill needs the fine-tune's logits from a checkpoint; a LoRA is compressed without it");
  });
  CompressOptions first = opt;
  first.distill.reset();
  const std::filesystem::path out(opt.out);
  std::string hidden = ".";  // appended piecewise: GCC 12 warns (-Wrestrict) on the one-line concatenation
  hidden += out.filename().string();
  hidden += ".undistilled.h5";
  first.out = (out.parent_path() / hidden).string();
  first.overwrite = true;
  RemovedAtExit undistilled{comm.is_root() ? first.out : ""};
  CompressReport rep = compress_adapter(first, comm);
  if (!rep.complete) return rep;  // ranks other than 0
  DistillOptions d = *opt.distill;
  d.base = opt.base, d.finetuned = opt.finetuned, d.adapter = first.out, d.out = opt.out, d.overwrite = opt.overwrite;
  rep.distillation = distill_scales(d);
  rep.adapter_bytes = std::filesystem::file_size(opt.out);
  for (const auto& w : rep.distillation->warnings) rep.warnings.push_back(w);
  double err = 0, norm = 0;  // the model's relative error again, with the distilled tensors'
  for (auto& t : rep.tensors) {
    if (auto it = rep.distillation->rel_error.find(t.name); it != rep.distillation->rel_error.end())
      t.rel_error = it->second;
    err += t.rel_error * t.rel_error * t.delta_sq, norm += t.delta_sq;
  }
  rep.rel_error = norm > 0 ? std::sqrt(err / norm) : 0.0;
  return rep;
}

}  // namespace

CompressReport run_compress(const CompressOptions& opt, Comm& comm) {
  return opt.distill ? compress_and_distill(opt, comm) : compress_adapter(opt, comm);
}

namespace {

// A resumed journal's tensor records are checked whole (they are renamed in without an fsync);
// a split tensor's block shares are fsynced files, whole once present.
bool journal_item_whole(const std::string& path) { return !path.ends_with(".part") || journal_part_whole(path); }

CompressReport compress_adapter(const CompressOptions& opt, Comm& comm) {
  auto t0 = std::chrono::steady_clock::now();
  CompressReport rep;
  std::map<std::string, std::string> side;
  std::unique_ptr<CompressJob> job;
  // the "all" phase: recipe, every header, the pairing and the output path before any tensor
  // byte, checked by every rank, so that a bad input ends every rank with one message
  collectively(comm, [&] {
    job.reset(new CompressJob{opt,
                              comm,
                              opt.threads ? opt.threads : default_threads_per_rank(comm),
                              opt.rules_file.empty() ? RecipeRules::single(opt.recipe, opt.only, opt.seed)
                                                     : RecipeRules::from_file(opt.rules_file, opt.seed),
                              nullptr,
                              nullptr,
                              {},
                              {},
                              {},
                              {},
                              {},
                              nullptr});
    job->devices = std::make_unique<gpu::DevicePool>(opt.device);
    job->base = std::make_unique<Checkpoint>(opt.base);
    job->ft = std::make_unique<FinetuneInput>(opt.finetuned, *job->base);
    check_finetune_pairs(*job->base, *job->ft);
    const std::string inputs[] = {opt.base, opt.finetuned};
    check_output_file_path(opt.out, inputs, opt.overwrite);
    for (const auto& name : job->ft->names())
      if (name.empty())
        throw Error(ErrorCode::Usage, opt.finetuned, "a tensor with an empty name cannot be stored in an adapter");
    job->names = job->ft->names();
    if (comm.is_root()) {
      std::vector<std::string> skipped;
      side = read_text_side_files(job->ft->side_file_folder(), &skipped);
      for (const auto& s : skipped)
        rep.warnings.push_back(job->ft->side_file_folder() + ": side file " + s +
                               " is binary or over 16 MB; apply takes it from the base");
    }
  });
  const auto& names = job->names;
  job->plan_splits();
  // the job: one item per tensor, a record in the journal that rank 0 stitches, or
  // per block of a split tensor, its pass's share that the last of its items (or the stitch) joins
  const bool split = std::any_of(job->splits.begin(), job->splits.end(), [](const auto& s) { return !s.empty(); });
  // a split tensor is several items (its blocks, its base's fingerprint): the progress counts items
  JobSpec spec{
      "compress", opt.out, opt.resume,        opt.progress, split ? "items" : "tensors", nlohmann::json::object(),
      {},         {},      journal_item_whole};
  spec.identity["rules"] = job->rules.to_json().dump();
  spec.identity["seed"] = opt.seed;
  spec.identity["zstd_level"] = opt.zstd_level;
  // not the bytes, but the journal's items (a resume with another plan redoes only what differs:
  // a whole tensor's record and a split one's joined record are the same file)
  spec.identity["split_mb"] = opt.split_mb;
  for (const auto& s : job->base->shards()) spec.input_files.push_back(s->path());
  for (const auto& f : job->ft->input_files()) spec.input_files.push_back(f);
  for (size_t i = 0; i < names.size(); ++i) {
    const SafetensorsEntry& e = job->ft->entry(names[i]);
    const std::vector<uint64_t>& starts = job->splits[i];
    if (starts.empty()) {
      spec.items.push_back({CompressJob::item(i), e.nbytes()});
      job->items.push_back({i, CompressJob::kWhole});
      continue;
    }
    const uint64_t row_bytes = e.nbytes() / starts.back();
    for (size_t k = 0; k + 1 < starts.size(); ++k) {
      spec.items.push_back({CompressJob::block_item(i, k), (starts[k + 1] - starts[k]) * row_bytes});
      job->items.push_back({i, k});
    }
    // the base's fingerprint reads one input where a block reads two and codes: about a quarter
    spec.items.push_back({CompressJob::block_item(i, CompressJob::kFingerprint), e.nbytes() / 4});
    job->items.push_back({i, CompressJob::kFingerprint});
  }
  Job run(comm, std::move(spec));
  job->journal = &run.journal();
  // the rank's threads take whole items: tensors (the fused pass is one pass per tensor) or blocks
  const unsigned workers = job->workers();
  if (const std::string w = threads_warning(job->threads); !w.empty() && comm.is_root()) rep.warnings.push_back(w);
  job->item_threads = workers > 1 ? 1 : job->threads;
  // Rank 0 places the records in the adapter while the ranks still encode (stitch_ahead.h);
  // the adapter's temporary sits in the journal folder, which an aborted job's ranks remove.
  // Declared in this order so the thread stops before the adapter it writes goes.
  std::unique_ptr<AdapterAssembly> assembly;
  std::unique_ptr<StitchAhead> ahead;
  if (comm.is_root() && stitch_ahead_enabled()) {
    independently(comm, [&] { assembly = std::make_unique<AdapterAssembly>(opt, names, run.journal(), rep); });
    job->offer = [&](size_t i, std::shared_ptr<const HeldRecord> rec) { assembly->offer(i, std::move(rec)); };
    ahead = std::make_unique<StitchAhead>(
        names.size(), [&](size_t i) { return assembly->ready_ahead(i); }, [&](size_t i) { assembly->place(i); });
  }
  RecordQueue records;
  job->records = &records;
  run.run_items(
      [&](size_t item, const std::string& path) {
        const CompressJob::ItemRef ref = job->items[item];
        if (ref.block == CompressJob::kWhole)
          job->encode(ref.tensor, path);
        else
          job->encode_block(ref.tensor, ref.block, path);
        if (ahead) ahead->poke();
      },
      [&] { job->find_cuts(); },
      [&] {
        records.drain();
        job->base->check_intact();
        job->ft->check_intact();
      },
      workers);
  job->records = nullptr;  // a join in the commit writes its record at once: the stitch reads it next
  rep.resumed = run.resumed();
  rep.complete = run.commit([&](JobJournal& journal) {
    // what the thread did not place: the records that were not there yet, or not room for
    size_t next = 0;
    if (ahead) next = ahead->finish();
    ahead.reset();
    job->offer = nullptr;
    check_free_space(opt.out, journal, next);
    if (!assembly) assembly = std::make_unique<AdapterAssembly>(opt, names, journal, rep);
    for (size_t i = next; i < names.size(); ++i) {
      // a split tensor's record from its blocks' shares (unless a killed stitch left it whole)
      if (!job->splits[i].empty() && !std::filesystem::exists(journal.item_path(CompressJob::item(i))))
        job->join_into_part(i, journal);
      assembly->place(i);
    }
    for (const auto& [why, count] : assembly->fallbacks)
      rep.warnings.push_back(std::to_string(count) + " tensor(s) stored raw instead: " + why);
    rep.rel_error = assembly->total_sq > 0 ? std::sqrt(assembly->err_sq / assembly->total_sq) : 0.0;
    assembly->writer.commit(job->root_attrs(names.size(), assembly->fingerprints), side);
    journal.remove();
    rep.adapter_bytes = std::filesystem::file_size(opt.out);
  });
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace

}  // namespace deltakit
