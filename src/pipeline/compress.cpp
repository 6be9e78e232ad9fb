#include "src/pipeline/compress.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>

#include "formats/adapter_h5.h"
#include "formats/checkpoint.h"
#include "formats/safetensors.h"
#include "src/codec/raw.h"
#include "src/codec/tensor_codec.h"
#include "src/core/atomic_output.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/core/half.h"
#include "src/pipeline/global_cut.h"
#include "src/pipeline/importance_files.h"
#include "src/pipeline/journal.h"
#include "src/pipeline/pair_check.h"
#include "src/pipeline/partition.h"
#include "src/pipeline/recipe_rules.h"
#include "src/pipeline/side_files.h"

namespace deltakit {

namespace {

Part bytes_part(const std::string& name, std::span<const uint8_t> b) {
  return {name, PartKind::U8, {b.size()}, {b.begin(), b.end()}, ""};
}

// The raw codec's parts: exact delta (fp32) plus patches, or the fine-tune's bytes.
void encode_raw(const TensorView& bv, const TensorView& fv, Json& attrs, std::vector<Part>& parts,
                CompressTensorReport& tr) {
  std::vector<uint8_t> delta;  // the fp32 delta's bytes, as the part stores them
  delta.reserve(fv.numel() * 4);
  RawEncoded d = raw_encode(bv, fv, [&](std::span<const float> block) {
    for (float x : block)
      if (std::isfinite(x)) tr.delta_sq += double(x) * x;
    const auto* b = reinterpret_cast<const uint8_t*>(block.data());
    delta.insert(delta.end(), b, b + block.size_bytes());
  });
  attrs["codec"] = d.mode == RawMode::Unchanged ? "unchanged" : "raw";
  attrs["recipe"] = "raw";
  if (d.mode == RawMode::Delta) {
    attrs["raw.mode"] = "delta";
    attrs["raw.exact_patches"] = d.exact_index.size();
    parts.push_back({"raw.delta", PartKind::F32, {fv.numel()}, std::move(delta), ""});
    if (!d.exact_index.empty()) {
      parts.push_back(
          {"raw.exact_index", PartKind::U64, {d.exact_index.size()}, bytes_of<uint64_t>(d.exact_index), ""});
      parts.push_back(bytes_part("raw.exact_bits", d.exact_bits));
    }
  } else if (d.mode == RawMode::Replace) {
    attrs["raw.mode"] = "replace";
    parts.push_back(bytes_part("raw.replacement", fv.bytes));
  }
  tr.codec = attrs["codec"].get<std::string>();
  tr.exact_patches = d.exact_index.size();
  tr.nonfinite = d.nonfinite;
}

// One tensor read and compared; the fp32 delta if a lossy recipe will encode it.
struct PreparedTensor {
  TensorView bv, fv;
  const Recipe* recipe = nullptr;
  bool changed = false;
  std::string fallback;
  std::vector<float> delta, importance;
  bool lossy() const { return changed && !recipe->is_raw() && fallback.empty(); }
  TensorDelta tensor_delta(const std::string& name, unsigned threads) const {
    TensorDelta td{name, fv.dtype, fv.shape, delta, {}, threads, nullptr};
    if (recipe->cherry && recipe->cherry->importance != "magnitude")
      td.importance = {
          recipe->cherry->importance == "fisher" ? Importance::Kind::PerElement : Importance::Kind::PerColumn,
          importance};
    return td;
  }
};

// Everything the ranks share: the inputs, opened and checked, and the plan.
struct CompressJob {
  const CompressOptions& opt;
  Comm& comm;
  unsigned threads;
  RecipeRules rules;
  std::unique_ptr<Checkpoint> base, ft;
  std::vector<std::string> names;
  ImportanceFiles importance;
  std::vector<ScoreCut> cuts;  // per tensor, for recipes with a scope=model stage
  std::vector<bool> has_cut;

  static std::string item(size_t i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "t%07zu.h5", i);
    return buf;
  }

  PreparedTensor prepare(size_t i) {
    const std::string& name = names[i];
    PreparedTensor p;
    p.bv = base->acquire(name);
    p.fv = ft->acquire(name);
    p.recipe = &rules.for_tensor(name);
    p.changed = p.bv.bytes.size() != p.fv.bytes.size() ||
                std::memcmp(p.bv.bytes.data(), p.fv.bytes.data(), p.bv.bytes.size()) != 0;
    p.fallback = p.changed ? recipe_unsuitable(*p.recipe, p.fv.dtype, p.fv.shape) : "";
    if (p.changed && !p.recipe->is_raw() && p.fallback.empty()) {
      // fine-tune minus base, block by block: one tensor-sized buffer, not two
      const uint64_t n = p.fv.numel(), block = 1 << 14;
      p.delta.resize(n);
      float b[block];
      uint32_t nonfinite = 0;
      for (uint64_t first = 0; first < n; first += block) {
        const uint64_t m = std::min(block, n - first);
        std::span<float> d(p.delta.data() + first, m);
        decode_to_f32(p.fv.dtype, p.fv.bytes, first, d);
        decode_to_f32(p.bv.dtype, p.bv.bytes, first, {b, m});
        for (uint64_t k = 0; k < m; ++k) {
          d[k] -= b[k];
          nonfinite |= (f32_bits(d[k]) & 0x7f800000u) == 0x7f800000u;  // branch-free: vectorizes
        }
      }
      if (nonfinite) {
        p.fallback = "the delta has NaN/Inf entries (raw carries them exactly)";
        p.delta.clear();
      }
    }
    if (p.lossy() && p.recipe->cherry && p.recipe->cherry->importance != "magnitude")
      p.importance = importance.load(*p.recipe->cherry, name, p.fv.numel(), p.fv.cols());
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
    std::map<std::string, std::vector<size_t>> pools;
    for (size_t i = 0; i < names.size(); ++i) {
      std::string key = model_scope_key(rules.for_tensor(names[i]));
      if (!key.empty()) pools[key].push_back(i);
    }
    for (const auto& [key, pool] : pools) {
      std::vector<uint64_t> bytes;
      uint64_t elements = 0;
      for (size_t i : pool) {
        const SafetensorsEntry& e = *ft->at(names[i]).entry;
        bytes.push_back(e.nbytes());
        uint64_t n = 1;
        for (uint64_t d : e.shape) n *= d;
        elements += n;
      }
      const Recipe& recipe = rules.for_tensor(names[pool[0]]);
      auto local = items_of(partition_by_bytes(bytes, comm.size()), comm.rank());
      // progress of this phase: rank 0's own tensors (ranks hold about equal bytes), two passes
      std::atomic<uint64_t> scored{0}, scored_bytes{0};
      uint64_t local_bytes = 0;
      for (size_t j : local) local_bytes += bytes[j];
      ProgressReporter progress(
          opt.progress, "scoring for " + key + " (rank 0's share, 2 passes)", "tensor passes", 2 * local.size(),
          2 * local_bytes,
          [&] {
            return ProgressCount{scored.load(), scored_bytes.load()};
          },
          comm.is_root());
      auto scores_of = [&](size_t j) {
        PreparedTensor p = prepare(pool[j]);
        std::vector<float> s;
        if (p.lossy()) s = model_scope_scores(*p.recipe, p.tensor_delta(names[pool[j]], threads));
        release(pool[j]);
        ++scored;
        scored_bytes += bytes[j];
        return s;
      };
      auto pool_cuts = find_global_cut(comm, pool.size(), local, model_scope_budget(recipe, elements), scores_of);
      progress.finish();
      for (size_t j = 0; j < pool.size(); ++j) cuts[pool[j]] = pool_cuts[j], has_cut[pool[j]] = true;
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

  // Encodes tensor i into its part file in the journal.
  void encode(size_t i, const std::string& path) {
    const std::string& name = names[i];
    PreparedTensor p = prepare(i);
    const TensorView &bv = p.bv, &fv = p.fv;
    CompressTensorReport tr;
    tr.name = name;
    tr.numel = fv.numel();
    tr.input_bytes = fv.bytes.size();
    tr.fallback = p.fallback;
    const uint64_t fp = fingerprint64(bv.bytes);
    Json attrs = Json::object();
    attrs["dtype"] = std::string(dtype_name(fv.dtype));
    attrs["shape"] = fv.shape;
    attrs["base_fingerprint"] = fp;
    std::vector<Part> parts;
    if (!p.lossy()) {
      encode_raw(bv, fv, attrs, parts, tr);
      attrs["rel_error"] = 0.0;
    } else {
      TensorDelta td = p.tensor_delta(name, threads);
      if (has_cut[i]) td.cut = &cuts[i];
      Encoded e = encode_tensor(*p.recipe, td);
      std::vector<float> recon =
          decode_tensor(e.attrs, EncodedSource(e), fv.shape, fv.dtype, opt.out + ": tensor '" + name + "'");
      tr.rel_error = relative_error(p.delta, recon);
      for (float x : p.delta) tr.delta_sq += double(x) * x;
      tr.codec = e.attrs["codec"].get<std::string>();
      for (auto& [k, v] : e.attrs.items()) attrs[k] = v;
      attrs["rel_error"] = tr.rel_error;
      parts = std::move(e.parts);
    }
    AdapterWriter w(path, opt.zstd_level, /*in_memory=*/true);
    tr.stored_bytes = w.add_tensor(name, attrs, parts);
    release(i);
    Json root = root_attrs(1, std::string(reinterpret_cast<const char*>(&fp), 8));
    root["report"] = Json{
        {"codec", tr.codec},
        {"fallback", tr.fallback},
        {"numel", tr.numel},
        {"input_bytes", tr.input_bytes},
        {"exact_patches", tr.exact_patches},
        {"nonfinite", tr.nonfinite},
        {"rel_error", tr.rel_error},
        {"delta_sq",
         tr.delta_sq}}.dump();
    w.commit(root, {});
  }
};

// What identifies a job for --resume: the inputs' tensors and files, and every option that
// changes the output (not threads or ranks, which never do).
std::string job_identity(const CompressOptions& opt, const RecipeRules& rules, const Checkpoint& base,
                         const Checkpoint& ft) {
  Json j = Json::object();
  j["command"] = "compress";
  j["out"] = opt.out;
  j["rules"] = rules.to_json().dump();
  j["seed"] = opt.seed;
  j["zstd_level"] = opt.zstd_level;
  for (const Checkpoint* c : {&base, &ft}) {
    std::vector<std::string> paths;
    for (const auto& s : c->shards()) paths.push_back(s->path());
    j[c == &base ? "base" : "finetuned"] = describe_input_files(paths);
  }
  return j.dump(1) + "\n";
}

// The stitched adapter takes about what the part files take. Refuse up front if the disk cannot
// hold it: HDF5 1.10 cannot close a file whose flush hit a full disk, so rather than fail there
// we fail here, cleanly (a disk that fills in the meantime still ends in an error, and the
// temporary is still removed).
void check_free_space(const std::string& out, const JobJournal& journal) {
  uint64_t need = 1 << 20;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(journal.dir(), ec)) need += e.file_size(ec);
  std::filesystem::path dir = std::filesystem::path(out).parent_path();
  auto space = std::filesystem::space(dir.empty() ? "." : dir, ec);
  if (!ec && space.available < need)
    throw Error(ErrorCode::Io, out,
                "not enough free space to write the adapter: it needs about " + std::to_string(need >> 20) + " MiB, " +
                    std::to_string(space.available >> 20) + " MiB are free (No space left on device)");
}

}  // namespace

CompressReport run_compress(const CompressOptions& opt) {
  SerialComm serial;
  return run_compress(opt, serial);
}

CompressReport run_compress(const CompressOptions& opt, Comm& comm) {
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
                              {}});
    job->base = std::make_unique<Checkpoint>(opt.base);
    job->ft = std::make_unique<Checkpoint>(opt.finetuned);
    check_same_tensors(*job->base, *job->ft);
    const std::string inputs[] = {opt.base, opt.finetuned};
    check_output_path(opt.out, inputs, opt.overwrite);
    for (const auto& name : job->ft->names())
      if (name.empty())
        throw Error(ErrorCode::Usage, opt.finetuned, "a tensor with an empty name cannot be stored in an adapter");
    job->names = job->ft->names();
    if (comm.is_root()) {
      std::vector<std::string> skipped;
      side = read_text_side_files(opt.finetuned, &skipped);
      for (const auto& s : skipped)
        rep.warnings.push_back(opt.finetuned + ": side file " + s +
                               " is binary or over 16 MB; apply takes it from the base");
    }
  });
  const auto& names = job->names;
  std::vector<uint64_t> bytes(names.size());
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < names.size(); ++i) total_bytes += bytes[i] = job->ft->at(names[i]).entry->nbytes();
  JobJournal journal(comm, opt.out, "compress", job_identity(opt, job->rules, *job->base, *job->ft), opt.resume);

  // the "one" phase: ranks work on their own tensors; a failure aborts the job with its message
  independently(comm, [&] { job->find_cuts(); });
  std::vector<size_t> todo;
  std::vector<uint64_t> todo_bytes;
  for (size_t i = 0; i < names.size(); ++i)
    if (!journal.done_at_start().count(CompressJob::item(i))) todo.push_back(i), todo_bytes.push_back(bytes[i]);
  rep.resumed = names.size() - todo.size();
  auto mine = items_of(partition_by_bytes(todo_bytes, comm.size()), comm.rank());
  ProgressReporter progress(
      opt.progress, "compress", "tensors", names.size(), total_bytes,
      [&] {
        ProgressCount c;
        for (const auto& item : journal.list())
          if (item.size() == 11 && item[0] == 't') {
            size_t i = std::strtoull(item.c_str() + 1, nullptr, 10);
            if (i < bytes.size()) ++c.items, c.bytes += bytes[i];
          }
        return c;
      },
      comm.is_root());
  independently(comm, [&] {
    for (size_t j : mine) job->encode(todo[j], journal.item_path(CompressJob::item(todo[j])));
    job->base->check_intact();
    job->ft->check_intact();
  });
  comm.barrier();  // every part file is in the journal

  if (comm.is_root()) {
    progress.finish();
    independently(comm, [&] {
      std::map<std::string, uint64_t> fallbacks;
      std::string fingerprints;
      double err_sq = 0, total_sq = 0;
      check_free_space(opt.out, journal);
      AdapterWriter writer(opt.out, opt.zstd_level);
      for (size_t i = 0; i < names.size(); ++i) {
        AdapterReader part(journal.item_path(CompressJob::item(i)));
        if (part.names().size() != 1 || part.names()[0] != names[i])
          throw Error(ErrorCode::AdapterInvalid, part.path(), "journal part does not hold tensor '" + names[i] + "'");
        CompressTensorReport tr;
        tr.name = names[i];
        Json r = Json::parse(part.root().value("report", std::string("{}")), nullptr, false);
        if (!r.is_object()) throw Error(ErrorCode::AdapterInvalid, part.path(), "journal part has no valid report");
        tr.codec = r.value("codec", std::string());
        tr.fallback = r.value("fallback", std::string());
        tr.numel = r.value("numel", uint64_t{0});
        tr.input_bytes = r.value("input_bytes", uint64_t{0});
        tr.exact_patches = r.value("exact_patches", uint64_t{0});
        tr.nonfinite = r.value("nonfinite", uint64_t{0});
        tr.rel_error = r.value("rel_error", 0.0);
        tr.delta_sq = r.value("delta_sq", 0.0);
        err_sq += tr.rel_error * tr.rel_error * tr.delta_sq;
        total_sq += tr.delta_sq;
        const uint64_t fp = part.base_fingerprint(names[i]);
        fingerprints.append(reinterpret_cast<const char*>(&fp), 8);
        tr.stored_bytes = writer.copy_tensor(part, names[i]);
        if (!tr.fallback.empty()) ++fallbacks[tr.fallback];
        if (tr.nonfinite)
          rep.warnings.push_back(opt.finetuned + ": tensor '" + names[i] + "' has " + std::to_string(tr.nonfinite) +
                                 " NaN/Inf entries (carried exactly by raw)");
        rep.input_bytes += tr.input_bytes;
        rep.tensors.push_back(std::move(tr));
      }
      for (const auto& [why, count] : fallbacks)
        rep.warnings.push_back(std::to_string(count) + " tensor(s) stored raw instead: " + why);
      rep.rel_error = total_sq > 0 ? std::sqrt(err_sq / total_sq) : 0.0;
      writer.commit(job->root_attrs(names.size(), fingerprints), side);
      journal.remove();
    });
    rep.adapter_bytes = std::filesystem::file_size(opt.out);
    rep.complete = true;
  } else {
    journal.disown();
  }
  comm.barrier();  // no rank returns before the adapter is in place
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
