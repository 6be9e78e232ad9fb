#include "src/pipeline/export_lora.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "formats/adapter_h5.h"
#include "formats/peft_lora.h"
#include "src/codec/codec.h"
#include "src/codec/lowrank.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/pipeline/apply.h"
#include "src/pipeline/finetune_input.h"
#include "src/pipeline/partition.h"
#include "src/pipeline/recipe_rules.h"

namespace deltakit {

namespace {

bool is_embedding_tensor(const std::string& name) {
  return name.ends_with("embed_tokens.weight") || name.ends_with("wte.weight") ||
         name.ends_with("word_embeddings.weight");
}

DType factor_dtype(const std::string& name, DType base) {
  if (name.empty()) return dtype_is_float_decodable(base) ? base : DType::F32;
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  if (name == "bfloat16") return DType::BF16;
  throw Error(ErrorCode::Usage, "", "--dtype must be float32, float16 or bfloat16, not \"" + name + "\"");
}

// Where δ comes from: base + fine-tune, or base + a deltakit adapter.
struct DeltaSource {
  const Checkpoint& base;
  std::unique_ptr<FinetuneInput> ft;
  std::unique_ptr<AdapterReader> adapter;
  std::mutex mu;  // HDF5 and the mappings are read by one thread at a time; SVDs run in parallel

  // δ in fp32 (empty when the tensor is unchanged).
  std::vector<float> delta(const std::string& name, std::vector<std::string>& warnings) {
    std::lock_guard<std::mutex> lock(mu);
    const TensorView bv = base.acquire(name);
    std::vector<float> d;
    if (adapter) {
      check_base_fingerprint(*adapter, bv, base.path(), false, warnings);
      const AdapterTensorSource src = adapter->source(name);
      if (auto prod = product_of_stored({adapter->attrs(name), src, adapter->where(name)}, bv)) {
        d.resize(bv.numel());
        for (uint64_t i = 0; i < prod->rows(); ++i) prod->decode_row(i, d.data() + i * prod->cols());
      }
    } else if (d = ft->lora_delta(name); d.empty()) {
      const TensorView fv = ft->acquire(name);
      if (fv.bytes.size() != bv.bytes.size() || std::memcmp(fv.bytes.data(), bv.bytes.data(), bv.bytes.size()) != 0) {
        d.resize(bv.numel());
        std::vector<float> b(bv.numel());
        decode_to_f32(fv.dtype, fv.bytes, 0, d);
        decode_to_f32(bv.dtype, bv.bytes, 0, b);
        for (size_t k = 0; k < d.size(); ++k) d[k] -= b[k];
      }
      ft->release(name);
    }
    base.release(name);
    for (float x : d)
      if (!std::isfinite(x))
        throw Error(ErrorCode::NonFinite, opt_where(),
                    "tensor '" + name + "' has a NaN/Inf delta; a LoRA cannot hold it");
    return d;
  }
  std::string opt_where() const { return adapter ? adapter->path() : ft->path(); }
};

// One tensor's outcome, as a rank hands it to rank 0.
struct TensorResult {
  size_t index = 0;
  double delta_sq = 0, energy_kept = 1;
  uint64_t rank = 0;
  bool exported = false, embedding = false;
  TensorSpec a_spec, b_spec;
  std::vector<uint8_t> a, b;
};

void put_u64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
void put_bytes(std::string& s, const std::string& b) { put_u64(s, b.size()), s += b; }

std::string serialize(const std::vector<TensorResult>& rs) {
  std::string s;
  put_u64(s, rs.size());
  for (const auto& r : rs) {
    nlohmann::json j = {{"index", r.index}, {"delta_sq", r.delta_sq}, {"energy_kept", r.energy_kept},
                        {"rank", r.rank},   {"exported", r.exported}, {"embedding", r.embedding}};
    if (r.exported) {
      j["a"] = {r.a_spec.name, dtype_name(r.a_spec.dtype), r.a_spec.shape};
      j["b"] = {r.b_spec.name, dtype_name(r.b_spec.dtype), r.b_spec.shape};
    }
    put_bytes(s, j.dump());
    put_bytes(s, std::string(r.a.begin(), r.a.end()));
    put_bytes(s, std::string(r.b.begin(), r.b.end()));
  }
  return s;
}

std::vector<TensorResult> deserialize(const std::string& s) {
  size_t at = 0;
  auto u64 = [&] {
    uint64_t v;
    std::memcpy(&v, s.data() + at, 8);
    at += 8;
    return v;
  };
  auto bytes = [&] {
    const uint64_t n = u64();
    std::string b = s.substr(at, n);
    at += n;
    return b;
  };
  auto spec = [](const nlohmann::json& j) {
    return TensorSpec{j[0].get<std::string>(), *dtype_from_name(j[1].get<std::string>()),
                      j[2].get<std::vector<uint64_t>>()};
  };
  std::vector<TensorResult> rs(u64());
  for (auto& r : rs) {
    const auto j = nlohmann::json::parse(bytes());
    r.index = j["index"], r.delta_sq = j["delta_sq"], r.energy_kept = j["energy_kept"], r.rank = j["rank"];
    r.exported = j["exported"], r.embedding = j["embedding"];
    if (r.exported) r.a_spec = spec(j["a"]), r.b_spec = spec(j["b"]);
    const std::string a = bytes(), b = bytes();
    r.a.assign(a.begin(), a.end());
    r.b.assign(b.begin(), b.end());
  }
  return rs;
}

std::vector<uint8_t> encoded(DType dtype, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  encode_from_f32(dtype, v, out);
  return out;
}

// δ ≈ US·Vᵀ split into PEFT's factors with √s on each side. A linear map's δ is [out, in]:
// B = U√S [out, r], A = √S·Vᵀ [r, in]. An embedding's δ is [vocab, dim] and PEFT factors its
// transpose: B = V√S [dim, r], A = √S·Uᵀ [r, vocab].
void split_factors(const LowrankFactors& f, uint64_t rows, uint64_t cols, bool embedding, DType dtype,
                   TensorResult& r) {
  const uint64_t k = f.r;
  std::vector<float> root(k);
  for (uint64_t j = 0; j < k; ++j) {
    double s2 = 0;  // s_j = ‖US[:, j]‖, U's columns being orthonormal
    for (uint64_t i = 0; i < rows; ++i) s2 += static_cast<double>(f.us[i * k + j]) * f.us[i * k + j];
    root[j] = static_cast<float>(std::sqrt(std::sqrt(s2)));
  }
  std::vector<float> u_side(rows * k), a_side(k * cols);  // U√S (row-major), √S·Vᵀ (row-major)
  for (uint64_t i = 0; i < rows; ++i)
    for (uint64_t j = 0; j < k; ++j) u_side[i * k + j] = root[j] > 0 ? f.us[i * k + j] / root[j] : 0.0f;
  for (uint64_t j = 0; j < k; ++j)
    for (uint64_t c = 0; c < cols; ++c) a_side[j * cols + c] = root[j] * f.v[c * k + j];
  if (!embedding) {
    r.b = encoded(dtype, u_side), r.a = encoded(dtype, a_side);
    r.b_spec.shape = {rows, k}, r.a_spec.shape = {k, cols};
    return;
  }
  std::vector<float> b(cols * k), a(k * rows);  // (√S·Vᵀ)ᵀ [dim, r]; (U√S)ᵀ [r, vocab]
  for (uint64_t j = 0; j < k; ++j)
    for (uint64_t c = 0; c < cols; ++c) b[c * k + j] = a_side[j * cols + c];
  for (uint64_t i = 0; i < rows; ++i)
    for (uint64_t j = 0; j < k; ++j) a[j * rows + i] = u_side[i * k + j];
  r.b = encoded(dtype, b), r.a = encoded(dtype, a);
  r.b_spec.shape = {cols, k}, r.a_spec.shape = {k, rows};
}

std::string module_of(const std::string& tensor) {
  return tensor.substr(0, tensor.size() - std::string(".weight").size());
}

std::string card(const ExportLoraOptions& opt, const ExportLoraReport& rep, uint64_t max_rank) {
  std::string s = "# LoRA adapter exported by deltakit\n\nBase model: `" + opt.base + "`\n\n";
  s += "Delta from: `" + (opt.adapter.empty() ? opt.finetuned : opt.adapter) + "`\n\n";
  s += "Rank " +
       (opt.rank ? "at most " + std::to_string(opt.rank)
                 : "for " + std::to_string(opt.energy) + " of each matrix's ‖δ‖²") +
       " (largest used: " + std::to_string(max_rank) +
       "); lora_alpha equals each module's rank, so B·A is the "
       "delta's truncation itself.\n\n";
  char buf[128];
  std::snprintf(buf, sizeof buf, "Relative error over the model: %.4g (%zu modules, %zu changed tensors dropped).\n",
                rep.rel_error, rep.modules.size(), rep.dropped.size());
  return s + buf;
}

}  // namespace

ExportLoraReport run_export_lora(const ExportLoraOptions& opt) {
  SerialComm serial;
  return run_export_lora(opt, serial);
}

ExportLoraReport run_export_lora(const ExportLoraOptions& opt, Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  ExportLoraReport rep;
  std::unique_ptr<Checkpoint> base;
  std::unique_ptr<DeltaSource> src;
  std::vector<size_t> candidates;  // base tensors that may carry δ (numeric)
  collectively(comm, [&] {
    if (opt.finetuned.empty() == opt.adapter.empty())
      throw Error(ErrorCode::Usage, "", "export-lora takes one of --finetuned or --adapter");
    if ((opt.rank > 0) == (opt.energy > 0))
      throw Error(ErrorCode::Usage, "", "export-lora takes one of --rank R or --energy E");
    if (opt.energy < 0 || opt.energy > 1) throw Error(ErrorCode::Usage, "", "--energy must be in (0, 1]");
    factor_dtype(opt.dtype, DType::F32);  // the name is checked before any work
    base = std::make_unique<Checkpoint>(opt.base);
    src.reset(new DeltaSource{*base, nullptr, nullptr, {}});
    if (!opt.adapter.empty()) {
      src->adapter = std::make_unique<AdapterReader>(opt.adapter);
      check_adapter_matches_base(*base, *src->adapter);
    } else {
      src->ft = std::make_unique<FinetuneInput>(opt.finetuned, *base);
      check_finetune_pairs(*base, *src->ft);
    }
    const std::string inputs[] = {opt.base, opt.finetuned.empty() ? opt.adapter : opt.finetuned};
    check_output_path(opt.out, inputs, opt.overwrite, /*make_parent=*/true);
    for (size_t i = 0; i < base->names().size(); ++i)
      if (dtype_is_float_decodable(base->at(base->names()[i]).entry->dtype)) candidates.push_back(i);
  });
  const auto& names = base->names();
  std::vector<uint64_t> bytes;
  for (size_t i : candidates) bytes.push_back(base->at(names[i]).entry->nbytes());
  const std::vector<size_t> local = items_of(partition_by_bytes(bytes, comm.size()), comm.rank());
  std::vector<TensorResult> mine(local.size());
  std::vector<std::string> warnings;
  const int threads = static_cast<int>(opt.threads ? opt.threads : default_threads_per_rank(comm));
  independently(comm, [&] {
    std::exception_ptr failed;
    std::mutex warn_mu;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
    for (size_t j = 0; j < local.size(); ++j) {
      try {
        const size_t i = candidates[local[j]];
        const std::string& name = names[i];
        const SafetensorsEntry& e = *base->at(name).entry;
        TensorResult& r = mine[j];
        r.index = i;
        std::vector<std::string> w;
        const std::vector<float> d = src->delta(name, w);
        if (!w.empty()) {
          std::lock_guard<std::mutex> lock(warn_mu);
          warnings.insert(warnings.end(), w.begin(), w.end());
        }
        for (float x : d) r.delta_sq += static_cast<double>(x) * x;
        const bool matrix = e.shape.size() == 2 && name.ends_with(".weight");
        if (r.delta_sq == 0 || !matrix || (!opt.only.empty() && !glob_match(opt.only, name))) continue;
        LowrankParams prm;
        prm.rank = opt.rank, prm.energy = opt.energy, prm.seed = opt.seed;
        const LowrankFactors f = lowrank_factorize(prm, name, d, e.shape[0], e.shape[1]);
        if (f.r == 0) continue;
        r.exported = true, r.embedding = is_embedding_tensor(name), r.rank = f.r, r.energy_kept = f.energy_kept;
        const DType dt = factor_dtype(opt.dtype, e.dtype);
        split_factors(f, e.shape[0], e.shape[1], r.embedding, dt, r);
        const std::string stem = "base_model.model." + module_of(name);
        r.a_spec.name = stem + (r.embedding ? ".lora_embedding_A" : ".lora_A.weight");
        r.b_spec.name = stem + (r.embedding ? ".lora_embedding_B" : ".lora_B.weight");
        r.a_spec.dtype = r.b_spec.dtype = dt;
      } catch (...) {
#pragma omp critical(export_lora_error)
        if (!failed) failed = std::current_exception();
      }
    }
    if (failed) std::rethrow_exception(failed);
  });
  // rank 0 gathers every rank's factors (small: r·(rows + cols) per matrix) and writes
  std::vector<TensorResult> all;
  for (const std::string& s : comm.allgather(serialize(mine))) {
    auto rs = deserialize(s);
    for (auto& r : rs) all.push_back(std::move(r));
  }
  for (const std::string& s : comm.allgather(nlohmann::json(warnings).dump()))
    for (const auto& w : nlohmann::json::parse(s)) rep.warnings.push_back(w.get<std::string>());
  std::sort(all.begin(), all.end(), [](const TensorResult& a, const TensorResult& b) { return a.index < b.index; });
  double err_sq = 0;
  uint64_t max_rank = 0;
  std::map<std::string, uint64_t> ranks;
  std::vector<LoraTensor> tensors;
  for (auto& r : all) {
    const std::string& name = names[r.index];
    rep.delta_sq += r.delta_sq;
    rep.finetune_bytes += base->at(name).entry->nbytes();
    if (r.delta_sq == 0) continue;
    if (!r.exported) {
      rep.dropped.push_back({name, r.delta_sq});
      err_sq += r.delta_sq;
      continue;
    }
    err_sq += (1 - r.energy_kept) * r.delta_sq;
    rep.modules.push_back({name, r.rank, r.energy_kept, r.delta_sq, r.embedding});
    max_rank = std::max(max_rank, r.rank);
    ranks[module_of(name)] = r.rank;
    tensors.push_back({r.a_spec, std::move(r.a)});
    tensors.push_back({r.b_spec, std::move(r.b)});
  }
  rep.rel_error = rep.delta_sq > 0 ? std::sqrt(std::max(0.0, err_sq) / rep.delta_sq) : 0.0;
  if (rep.modules.empty())
    collectively(comm, [&] {
      throw Error(ErrorCode::InvalidValue, opt.finetuned.empty() ? opt.adapter : opt.finetuned,
                  "no changed matrix to export" + (opt.only.empty() ? std::string() : " matching --only " + opt.only));
    });
  if (comm.is_root()) {
    nlohmann::json pattern = nlohmann::json::object();
    std::set<std::string> targets;
    for (const auto& [module, r] : ranks) {
      if (r != max_rank) pattern[module] = r;
      targets.insert(module.substr(module.rfind('.') + 1));
    }
    nlohmann::json config = {{"peft_type", "LORA"},
                             {"task_type", "CAUSAL_LM"},
                             {"base_model_name_or_path", opt.base},
                             {"r", max_rank},
                             {"lora_alpha", max_rank},
                             {"rank_pattern", pattern},
                             {"alpha_pattern", pattern},
                             {"target_modules", std::vector<std::string>(targets.begin(), targets.end())},
                             {"lora_dropout", 0.0},
                             {"bias", "none"},
                             {"fan_in_fan_out", false},
                             {"use_rslora", false},
                             {"use_dora", false},
                             {"modules_to_save", nullptr},
                             {"inference_mode", true}};
    independently(comm, [&] { write_peft_lora(opt.out, config, tensors, card(opt, rep, max_rank)); });
    rep.adapter_bytes = std::filesystem::file_size(std::filesystem::path(opt.out) / kLoraWeightsName);
    rep.complete = true;
  }
  comm.barrier();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
