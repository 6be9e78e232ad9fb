#include "src/pipeline/merge.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "formats/adapter_h5.h"
#include "formats/checkpoint.h"
#include "src/core/big_buffer.h"
#include "src/core/collective.h"
#include "src/core/error.h"
#include "src/core/layer_name.h"
#include "src/core/tensor_view.h"
#include "src/core/whole_file.h"
#include "src/gpu/device_codec.h"
#include "src/gpu/device_merge.h"
#include "src/merge/combine.h"
#include "src/merge/merge_config.h"
#include "src/merge/methods.h"
#include "src/pipeline/apply.h"
#include "src/pipeline/finetune_input.h"
#include "src/pipeline/job.h"
#include "src/pipeline/side_files.h"

namespace fs = std::filesystem;

namespace deltakit {

namespace {

bool is_hdf5_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  std::ifstream f(path, std::ios::binary);
  char sig[8] = {};
  f.read(sig, 8);
  return f.gcount() == 8 && std::string(sig, 8) == std::string("\x89HDF\r\n\x1a\n", 8);
}

bool is_embedding(const std::string& name) {
  return name.find("embed_tokens") != std::string::npos || name.find("lm_head") != std::string::npos ||
         name.find("wte") != std::string::npos;
}

// The warning for a model whose vocabulary grew past the base's (only the base's rows merge).
std::string grown_rows_warning(const std::string& path, const std::string& name, uint64_t rows, uint64_t base_rows) {
  return path + ": tensor '" + name + "' has " + std::to_string(rows) + " rows, the base " + std::to_string(base_rows) +
         ": merging the base's rows only (new tokens' rows are dropped)";
}

// One model of the merge: a fine-tuned checkpoint, or an adapter over the base.
struct MergeInput {
  std::string path;
  std::unique_ptr<Checkpoint> ckpt;
  std::unique_ptr<AdapterReader> adapter;
  std::unique_ptr<PeftLora> lora;

  // Headers only: every layout tensor is present with a usable shape; nothing else is present.
  void check_against(const Checkpoint& layout, const Checkpoint* base) {
    if (adapter) {
      if (!base) throw Error(ErrorCode::Usage, path, "an adapter can only be merged with base_model set");
      check_adapter_matches_base(*base, *adapter);
      return;
    }
    if (lora) {
      if (!base) throw Error(ErrorCode::Usage, path, "a LoRA adapter can only be merged with base_model set");
      lora->check_against_base(*base);
      return;
    }
    for (const auto& name : ckpt->names())
      if (!layout.find(name))
        throw Error(ErrorCode::TensorSetMismatch, path, "has tensor '" + name + "' that " + layout.path() + " lacks");
    for (const auto& name : layout.names()) {
      const auto* got = ckpt->find(name);
      if (!got) throw Error(ErrorCode::TensorSetMismatch, path, "has no tensor '" + name + "'");
      const auto& want = *layout.at(name).entry;
      const auto& have = *got->entry;
      if (have.shape == want.shape) continue;
      const bool grown = is_embedding(name) && have.shape.size() == 2 && want.shape.size() == 2 &&
                         have.shape[1] == want.shape[1] && have.shape[0] > want.shape[0];
      if (!grown)
        throw Error(ErrorCode::ShapeMismatch, path,
                    "tensor '" + name + "' has shape " + shape_string(have.shape) + " but " + shape_string(want.shape) +
                        " in " + layout.path());
      if (!dtype_is_float_decodable(have.dtype))
        throw Error(ErrorCode::DtypeMismatch, path, "tensor '" + name + "' is not a float tensor");
    }
  }

  // fp32 values of the tensor the layout tensor `lv` names (base rows only for a grown vocabulary).
  void read(const TensorView& lv, const std::string& base_path, bool force, std::span<float> out,
            std::vector<uint8_t>& scratch, std::vector<std::string>& warnings) const {
    if (adapter) {
      apply_adapter_tensor(*adapter, lv, 1.0f, force, base_path, scratch, warnings);
      decode_to_f32(lv.dtype, scratch, 0, out);
      return;
    }
    if (lora) {  // base + scale·B·A in fp32: ΔW itself, not rounded to the base's dtype first
      decode_to_f32(lv.dtype, lv.bytes, 0, out);
      if (const LoraModule* m = lora->module_for(lv.name)) {
        const std::vector<float> d = lowrank_dense(lora_factors(*lora, *m), lv.rows(), lv.cols());
        for (size_t k = 0; k < out.size(); ++k) out[k] += d[k];
      }
      return;
    }
    TensorView v = ckpt->acquire(lv.name);
    if (v.shape != lv.shape) warnings.push_back(grown_rows_warning(path, lv.name, v.shape[0], lv.shape[0]));
    decode_to_f32(v.dtype, v.bytes, 0, out);  // a grown matrix's first rows are the base's rows
    ckpt->release(lv.name);
  }
};

DType output_dtype(const std::string& name, DType fallback) {
  if (name.empty()) return fallback;
  if (name == "float32") return DType::F32;
  if (name == "float16") return DType::F16;
  return DType::BF16;
}

std::string torch_dtype_name(DType d) { return d == DType::F32 ? "float32" : d == DType::F16 ? "float16" : "bfloat16"; }

// The card written beside the merged weights.
std::string model_card(const MergeConfig& c, const MergeMethod& m, const std::string& rescale) {
  std::string s = "# Merged with deltakit\n\nMethod: `" + c.method + "`";
  if (m.kind == MergeKind::TaskArithmetic)
    s += std::string(" (sparsify: ") + sparsify_name(m.sparsify) + ", consensus: " + consensus_name(m.consensus) +
         ", rescale: " + rescale + ")";
  s += "\n\n";
  if (!c.base_model.empty()) s += "Base model: `" + c.base_model + "`\n\n";
  s += "Models:\n\n";
  for (const auto& x : c.models) s += "- `" + x.path + "`\n";
  s += "\nThe configuration is in `merge.yml` beside this card; `deltakit merge merge.yml --out DIR` "
       "reproduces these weights byte for byte.\n";
  return s;
}

// The merge every rank holds: the config, the inputs opened and checked against the layout (the
// base, or the first model without one), and the output's tensors.
struct MergeJob {
  explicit MergeJob(const MergeOptions& o) : opt(o) {}
  const MergeOptions& opt;
  MergeConfig cfg;
  const MergeMethod* method = nullptr;
  RescaleNorm rescale_norm = RescaleNorm::L1;
  std::unique_ptr<Checkpoint> base;
  const Checkpoint* layout = nullptr;
  std::vector<MergeInput> inputs;
  std::unique_ptr<gpu::DevicePool> devices;  // --device cuda: one per worker (empty: the CPU)

  // Every mapped input is still whole (a truncated one read as zeros under the SIGBUS guard).
  void check_intact() const {
    if (base) base->check_intact();
    layout->check_intact();
    for (const auto& in : inputs)
      if (in.ckpt) in.ckpt->check_intact();
  }
  std::vector<TensorSpec> specs;
  // What each output tensor (parallel to specs) is made of: the inputs taking part, the tensor
  // each reads (a stacked layer reads its source layer), their own parameters, its position.
  struct OutputTensor {
    std::string base_name;  // the base's tensor taking part ("": the base takes no part)
    std::vector<size_t> inputs;
    std::vector<std::string> names;
    std::vector<const std::map<std::string, ParamValue>*> own;
    double t = 0;
  };
  std::vector<OutputTensor> outputs;
  std::map<std::string, size_t> output_index;
  int layers = 0;      // the layout's layers (gradient positions of the models syntax)
  int out_layers = 0;  // with slices: the output's layer count, for config.json
  // One worker's buffers, which only grow: resizing vectors down and up for tensors of mixed
  // sizes zero-filled a large tensor's worth of memory each time. A worker takes a set from the
  // pool for a shard and gives it back.
  struct Buffers {
    BigBuffer<float> base_f, out_f;
    std::vector<BigBuffer<float>> model_f;
    BigBuffer<uint8_t> out_bytes;
    std::vector<uint8_t> scratch;
  };
  std::mutex pool_mutex;
  std::vector<std::unique_ptr<Buffers>> pool;
  std::unique_ptr<Buffers> take_buffers() {
    std::lock_guard<std::mutex> lock(pool_mutex);
    if (pool.empty()) {
      auto b = std::make_unique<Buffers>();
      b->model_f.resize(inputs.size());
      return b;
    }
    auto b = std::move(pool.back());
    pool.pop_back();
    return b;
  }
  void give_back(std::unique_ptr<Buffers> b) {
    std::lock_guard<std::mutex> lock(pool_mutex);
    pool.push_back(std::move(b));
  }

  // config, headers and output path, before any tensor byte (every rank, collectively)
  void open() {
    cfg = parse_merge_config(read_whole_file(opt.config, "merge config"), opt.config);
    if (!opt.dtype.empty()) {
      if (opt.dtype != "float32" && opt.dtype != "float16" && opt.dtype != "bfloat16")
        throw Error(ErrorCode::Usage, "", "--dtype must be float32, float16 or bfloat16, not \"" + opt.dtype + "\"");
      cfg.dtype = opt.dtype;
    }
    method = &merge_method(cfg.method);
    devices = std::make_unique<gpu::DevicePool>(opt.device);
    if (!cfg.rescale_norm.empty())
      rescale_norm =
          locate_invalid_values(ErrorCode::Usage, opt.config, [&] { return parse_rescale(cfg.rescale_norm); });
    if (!cfg.base_model.empty()) base = std::make_unique<Checkpoint>(cfg.base_model);
    for (const auto& m : cfg.models) {
      MergeInput in;
      in.path = m.path;
      if (is_hdf5_file(m.path))
        in.adapter = std::make_unique<AdapterReader>(m.path);
      else if (is_peft_lora_folder(m.path))
        in.lora = std::make_unique<PeftLora>(m.path);
      else
        in.ckpt = std::make_unique<Checkpoint>(m.path);
      inputs.push_back(std::move(in));
    }
    if (cfg.slices.empty())
      plan_whole_models();
    else
      plan_slices();
    std::vector<std::string> in_paths;
    if (base) in_paths.push_back(cfg.base_model);
    for (const auto& m : cfg.models) in_paths.push_back(m.path);
    if (!cfg.tokenizer_source.empty() && cfg.tokenizer_source != "base" && !fs::is_directory(cfg.tokenizer_source))
      throw Error(ErrorCode::Usage, opt.config,
                  "tokenizer_source " + cfg.tokenizer_source + " is not a model folder (base, or a model's folder)");
    // as mergekit: the output's parent folders are made if missing
    check_output_path(opt.out, in_paths, opt.overwrite, /*make_parent=*/true);
  }

  void add_output(TensorSpec spec, OutputTensor o) {
    output_index[spec.name] = specs.size();
    specs.push_back(std::move(spec));
    outputs.push_back(std::move(o));
  }

  // `models:` every model whole, tensor by tensor over the layout (the base, or the first model).
  void plan_whole_models() {
    if (!base && !inputs[0].ckpt)
      throw Error(ErrorCode::Usage, opt.config, cfg.method + " without base_model needs a checkpoint first");
    layout = base ? base.get() : inputs[0].ckpt.get();
    for (auto& in : inputs) in.check_against(*layout, base.get());
    for (const auto& name : layout->names())
      if (auto l = layer_index(name)) layers = std::max(layers, *l + 1);
    for (const auto& name : layout->names()) {
      const auto& e = *layout->at(name).entry;
      const DType d = dtype_is_float_decodable(e.dtype) ? output_dtype(cfg.dtype, e.dtype) : e.dtype;
      OutputTensor o;
      o.base_name = base ? name : "";
      for (size_t i = 0; i < inputs.size(); ++i)
        o.inputs.push_back(i), o.names.push_back(name), o.own.push_back(&cfg.models[i].params);
      o.t = gradient_position(name, layers);
      add_output({name, d, e.shape}, std::move(o));
    }
  }

  size_t input_of(const std::string& path) const {
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].path == path) return i;
    throw std::logic_error("merge: no input " + path);
  }

  // `slices:` layer stacking. The output's tensors follow the layout's order, with its layers
  // replaced by the stacked ones; embeddings come from the first slice, the rest from the last.
  void plan_slices() {
    const SliceSource& first = cfg.slices[0].sources[0];
    if (!base && !inputs[input_of(first.path)].ckpt)
      throw Error(ErrorCode::Usage, opt.config, "slices without base_model need a checkpoint as the first source");
    layout = base ? base.get() : inputs[input_of(first.path)].ckpt.get();
    for (auto& in : inputs) {
      if (in.ckpt) continue;
      if (!base) throw Error(ErrorCode::Usage, in.path, "an adapter or a LoRA in slices needs base_model");
      in.check_against(*base, base.get());
    }
    // the layout's layer tensors, by what follows the layer number (layer 0's, in order)
    std::string prefix;
    std::vector<std::string> rests;
    for (const auto& name : layout->names())
      if (auto l = parse_layer_name(name); l && l->index == 0) {
        prefix = name.substr(0, l->rest_at - 2);  // "model.layers." of "model.layers.0.<rest>"
        rests.push_back(name.substr(l->rest_at));
      }
    if (rests.empty()) throw Error(ErrorCode::Usage, layout->path(), "has no layers to stack");
    auto layer_name = [&](int l, const std::string& rest) { return prefix + std::to_string(l) + "." + rest; };
    auto add = [&](const std::string& out_name, const MergeSlice& slice, const std::function<std::string(int)>& src_of,
                   double t) {
      OutputTensor o;
      o.t = t;
      const SafetensorsEntry* shape_of = nullptr;
      for (const SliceSource& src : slice.sources) {
        const std::string nm = src_of(src.begin);
        const bool is_base = base && src.path == cfg.base_model;
        const size_t i = is_base ? 0 : input_of(src.path);
        const Checkpoint* c = is_base || !inputs[i].ckpt ? base.get() : inputs[i].ckpt.get();
        const auto* loc = c->find(nm);
        if (!loc)
          throw Error(ErrorCode::TensorSetMismatch, src.path,
                      "has no tensor '" + nm + "' (layer_range [" + std::to_string(src.begin) + ", " +
                          std::to_string(src.end) + "] past its layers?)");
        if (shape_of && loc->entry->shape != shape_of->shape)
          throw Error(ErrorCode::ShapeMismatch, src.path,
                      "tensor '" + nm + "' has shape " + shape_string(loc->entry->shape) + " but " +
                          shape_string(shape_of->shape) + " in the slice's first source");
        if (!shape_of) shape_of = loc->entry;
        if (is_base) {
          o.base_name = nm;
        } else {
          o.inputs.push_back(i), o.names.push_back(nm), o.own.push_back(&src.params);
        }
      }
      const DType d =
          dtype_is_float_decodable(shape_of->dtype) ? output_dtype(cfg.dtype, shape_of->dtype) : shape_of->dtype;
      add_output({out_name, d, shape_of->shape}, std::move(o));
    };
    bool stacked = false;
    for (const auto& name : layout->names()) {
      if (layer_index(name)) {
        if (stacked) continue;
        stacked = true;
        for (const MergeSlice& slice : cfg.slices) {
          const int len = slice.sources[0].end - slice.sources[0].begin;
          for (int idx = 0; idx < len; ++idx, ++out_layers)
            for (const auto& rest : rests)
              add(
                  layer_name(out_layers, rest), slice, [&](int begin) { return layer_name(begin + idx, rest); },
                  len > 1 ? idx / static_cast<double>(len - 1) : 1.0);
        }
        continue;
      }
      // outside the layers (mergekit's pre and post weights)
      const bool pre = name.find("embed") != std::string::npos;
      add(
          name, pre ? cfg.slices.front() : cfg.slices.back(), [&](int) { return name; }, 0.0);
    }
  }

  // The output's shard size: --max-shard-size, else the layout's largest shard (or 5 GB).
  uint64_t max_shard_bytes() const {
    if (opt.max_shard_bytes) return opt.max_shard_bytes;
    if (!layout->sharded()) return 5'000'000'000ull;
    uint64_t m = 0;
    for (const auto& s : layout->shards()) m = std::max(m, s->file_size());
    return m;
  }

  JobSpec job_spec(const ShardPlan& plan, uint64_t max_shard) const {
    JobSpec spec{"merge", opt.out,           opt.resume, opt.progress, "shards", nlohmann::json::object(),
                 {},      shard_items(plan), {}};
    spec.identity["config"] = cfg.source_text;
    spec.identity["dtype"] = cfg.dtype;
    spec.identity["max_shard_bytes"] = max_shard;
    spec.identity["force"] = opt.force;
    if (base)
      for (const auto& s : base->shards()) spec.input_files.push_back(s->path());
    for (const auto& in : inputs) {
      if (in.adapter)
        spec.input_files.push_back(in.path);
      else if (in.lora)
        for (const char* f : {kLoraConfigName, kLoraWeightsName}) spec.input_files.push_back(in.path + "/" + f);
      else
        for (const auto& s : in.ckpt->shards()) spec.input_files.push_back(s->path());
    }
    return spec;
  }

  // The config's parameters for output tensor `name` (algorithms.md §8): a model's own by its
  // tensor's name, the global ones by the output's, as mergekit reads them.
  void set_parameters(TensorMergeArgs& a, const std::string& name, const OutputTensor& o) const {
    const double pos = o.t;
    for (size_t k = 0; k < o.inputs.size(); ++k) {
      const auto* own = o.own[k];
      const std::string& nm = o.names[k];
      const double wgt = merge_param_from(own, cfg, "weight", nm, pos, NAN);
      if (method->needs_weight && std::isnan(wgt))
        throw Error(ErrorCode::Usage, opt.config,
                    "no weight of model " + inputs[o.inputs[k]].path + " applies to '" + nm + "'");
      a.weight.push_back(wgt);
      a.density.push_back(merge_param_from(own, cfg, "density", nm, pos, 1.0));
      a.gamma.push_back(merge_param_from(own, cfg, "gamma", nm, pos, 0.01));
      // mergekit's default since v0.1.3: without it a della config would be DARE with consensus
      a.epsilon.push_back(merge_param_from(own, cfg, "epsilon", nm, pos, 0.15));
      a.scale.push_back(merge_param_from(own, cfg, "scale", nm, pos, 1.0));
    }
    a.filter_wise = merge_param(cfg, -1, "filter_wise", name, pos, 0.0) != 0;
    a.select_topk = merge_param(cfg, -1, "select_topk", name, pos, 1.0);
    a.max_iter = static_cast<int>(merge_param(cfg, -1, "max_iter", name, pos, 10));
    a.tol = merge_param(cfg, -1, "tol", name, pos, 1e-5);
    a.normalize_weights = merge_param(cfg, -1, "normalize_weights", name, pos, 1.0) != 0;
    a.eps = merge_param(cfg, -1, "eps", name, pos, 1e-8);
    a.normalize = merge_param(cfg, -1, "normalize", name, pos, method->default_normalize) != 0;
    const bool rescale = merge_param(cfg, -1, "rescale", name, pos, method->default_rescale) != 0;
    a.rescale = rescale ? rescale_norm : RescaleNorm::None;
    a.lambda = merge_param(cfg, -1, "lambda", name, pos, 1.0);
    a.t = merge_param(cfg, -1, "t", name, pos, 0.5);  // global only, as mergekit
    a.seed = cfg.seed;
    if (merge_param(cfg, -1, "nuslerp_flatten", name, pos, 1.0) == 0)
      a.nuslerp_vectors = merge_param(cfg, -1, "nuslerp_row_wise", name, pos, 0.0) != 0 ? NuSlerpVectors::Columns
                                                                                        : NuSlerpVectors::Rows;
  }

  // A tensor's merge arguments from its name and shape (set_parameters adds the config's).
  static TensorMergeArgs args_for(const TensorSpec& spec) {
    TensorMergeArgs a;
    a.name = spec.name;
    a.cols = spec.shape.empty() ? 1 : spec.shape.back();
    a.leading = spec.shape.empty() ? 1 : spec.shape.front();
    return a;
  }

  // Whether `o` can stream: linear, or task arithmetic whose sparsification needs only
  // tensor-wide statistics (none, magnitude, random: task_arithmetic, ties, dare_ties,
  // dare_linear, magnitude_prune), with every input a checkpoint.
  static bool streamable(SparsifyMethod m) {
    SparsifyOptions so;
    so.method = m;
    return StreamSparsifier::supports(so);
  }
  bool streams(const TensorSpec& spec, const OutputTensor& o) const {
    if (!dtype_is_float_decodable(spec.dtype)) return false;
    const bool ta = method->kind == MergeKind::TaskArithmetic && !o.base_name.empty() && streamable(method->sparsify);
    if (!ta && method->kind != MergeKind::Linear) return false;
    for (size_t k : o.inputs)
      if (!inputs[k].ckpt) return false;
    return true;
  }

  // The same merge a block of 32K entries at a time (four inputs' blocks in fp32 and the output's
  // then fit a 1 MB L2 beside the read buffer; 64K took 10-15% more user time): each input read
  // by pread (the mapping untouched) and decoded; the task vectors' statistics (a magnitude cut,
  // norms) in passes over the blocks first, then each block sparsified, weighed, mixed, encoded
  // and handed on. The same bytes as the whole tensor, in memory that does not grow with it.
  void merge_streamed(Buffers& buf, const TensorSpec& spec, const OutputTensor& o, uint64_t numel, MergeReport& rep,
                      const std::function<void(std::span<const uint8_t>)>& sink) {
    constexpr uint64_t kBlock = 1 << 15;
    const std::string& name = spec.name;
    const std::string context = "tensor '" + name + "': ";
    TensorMergeArgs a = args_for(spec);
    set_parameters(a, name, o);
    const bool ta = method->kind == MergeKind::TaskArithmetic;
    std::vector<std::unique_ptr<StreamSparsifier>> sparsifiers;
    if (ta)
      locate_invalid_values(
          ErrorCode::Usage, opt.config,
          [&] {
            for (size_t j = 0; j < o.inputs.size(); ++j)
              sparsifiers.push_back(std::make_unique<StreamSparsifier>(numel, sparsify_options(*method, a, j)));
          },
          context);
    const TensorView bv = o.base_name.empty() ? TensorView{} : base->acquire(o.base_name, false);
    std::vector<TensorView> views;
    for (size_t k = 0; k < o.inputs.size(); ++k) {
      views.push_back(inputs[o.inputs[k]].ckpt->acquire(o.names[k], false));
      if (views.back().shape != spec.shape)
        rep.warnings.push_back(
            grown_rows_warning(inputs[o.inputs[k]].path, o.names[k], views.back().shape[0], spec.shape[0]));
    }
    if (!o.base_name.empty()) rep.bytes_read += numel * dtype_size(bv.dtype);
    for (const TensorView& v : views) rep.bytes_read += numel * dtype_size(v.dtype);
    // plain task arithmetic on the CPU: θ_j as read into one fused pass (combine_task_arithmetic)
    const bool plain_ta =
        ta && !o.base_name.empty() && method->consensus == Consensus::None && !devices->gpu() &&
        std::none_of(sparsifiers.begin(), sparsifiers.end(), [](const auto& s) { return s->active(); });
    std::vector<uint8_t> raw(std::min(numel, kBlock) * 4);  // one input's block, any float dtype
    const auto read = [&](const TensorView& v, uint64_t first, std::span<float> f) {
      read_elements(v, first, f.size(), raw.data());
      decode_to_f32(v.dtype, raw, 0, f);
    };
    // block [first, first + m) of every input into a: the base, and θ_j (or θ_j − θ_b for task arithmetic)
    const auto read_block = [&](uint64_t first, uint64_t m) {
      if (!o.base_name.empty()) {
        const std::span<float> b = buf.base_f.first(m);
        read(bv, first, b);
        a.base = b;
      }
      a.models.clear();
      for (size_t j = 0; j < views.size(); ++j) {
        const std::span<float> f = buf.model_f[o.inputs[j]].first(m);
        read(views[j], first, f);
        if (ta && !plain_ta)
          for (size_t i = 0; i < m; ++i) f[i] -= a.base[i];
        a.models.push_back(f);
      }
    };
    // statistics passes, for the sparsifiers that need one more
    for (;;) {
      std::vector<size_t> pending;
      for (size_t j = 0; j < sparsifiers.size(); ++j)
        if (sparsifiers[j]->needs_pass()) pending.push_back(j);
      if (pending.empty()) break;
      for (uint64_t first = 0; first < numel; first += kBlock) {
        read_block(first, std::min(kBlock, numel - first));
        for (size_t j : pending) sparsifiers[j]->observe(first, a.models[j]);
      }
      for (size_t j : pending) sparsifiers[j]->end_pass();
    }
    const size_t es = dtype_size(spec.dtype);
    for (uint64_t first = 0; first < numel; first += kBlock) {
      const uint64_t m = std::min(kBlock, numel - first);
      read_block(first, m);
      const std::span<float> merged = buf.out_f.first(m);
      locate_invalid_values(
          ErrorCode::Usage, opt.config,
          [&] {
            if (!ta) return merge_tensor(*method, a, merged);
            if (plain_ta) {
              const std::vector<std::span<const float>> models(a.models.begin(), a.models.end());
              return combine_task_arithmetic(a.base, models, a.weight, a.lambda, a.normalize, merged);
            }
            for (size_t j = 0; j < sparsifiers.size(); ++j) sparsifiers[j]->drop(first, a.models[j]);
            gpu::combine_on(devices->take().get(), *method, a, merged);
          },
          context);
      const std::span<uint8_t> out_b = buf.out_bytes.first(m * es);
      encode_from_f32(spec.dtype, merged, out_b);
      sink(out_b);
    }
    if (!o.base_name.empty()) base->release(o.base_name);
    for (size_t k = 0; k < o.inputs.size(); ++k) inputs[o.inputs[k]].ckpt->release(o.names[k]);
  }

  // One output tensor in its dtype, to `sink`: integer tensors are copied (the base's, or the
  // first input's), float ones merged (a block at a time where the method streams).
  void merge_one(Buffers& buf, const TensorSpec& spec, MergeReport& rep,
                 const std::function<void(std::span<const uint8_t>)>& sink) {
    const std::string& name = spec.name;
    const OutputTensor& o = outputs[output_index.at(name)];
    uint64_t numel = 1;
    for (uint64_t d : spec.shape) numel *= d;
    if (streams(spec, o)) return merge_streamed(buf, spec, o, numel, rep, sink);
    const std::span<uint8_t> out_b = buf.out_bytes.first(static_cast<size_t>(numel) * dtype_size(spec.dtype));
    if (!dtype_is_float_decodable(spec.dtype)) {  // integer buffers, unchanged
      const Checkpoint* from = !o.base_name.empty() ? base.get() : inputs[o.inputs[0]].ckpt.get();
      const std::string& nm = !o.base_name.empty() ? o.base_name : o.names[0];
      const TensorView v = from->acquire(nm);
      std::memcpy(out_b.data(), v.bytes.data(), out_b.size());
      rep.bytes_read += v.bytes.size();
      from->release(nm);
      return sink(out_b);
    }
    TensorMergeArgs a = args_for(spec);
    if (!o.base_name.empty()) {
      const TensorView bv = base->acquire(o.base_name);
      const std::span<float> b = buf.base_f.first(numel);
      decode_to_f32(bv.dtype, bv.bytes, 0, b);
      a.base = b;
      rep.bytes_read += bv.bytes.size();
      base->release(o.base_name);
    }
    for (size_t k = 0; k < o.inputs.size(); ++k) {
      const std::string& nm = o.names[k];
      // the view an input is read against: the base's tensor (adapters and LoRAs add to it), or
      // the output's name and shape (a checkpoint reads its own tensor)
      const bool over_base = !inputs[o.inputs[k]].ckpt;
      const TensorView lv = over_base ? base->acquire(nm) : TensorView{nm, spec.dtype, spec.shape, {}};
      a.models.push_back(buf.model_f[o.inputs[k]].first(numel));
      inputs[o.inputs[k]].read(lv, cfg.base_model, opt.force, a.models.back(), buf.scratch, rep.warnings);
      rep.bytes_read += numel * dtype_size(spec.dtype);
      if (over_base) base->release(nm);
    }
    set_parameters(a, name, o);
    const std::span<float> merged = buf.out_f.first(numel);
    locate_invalid_values(
        ErrorCode::Usage, opt.config, [&] { merge_tensor(*method, a, merged); }, "tensor '" + name + "': ");
    encode_from_f32(spec.dtype, merged, out_b);
    sink(out_b);
  }

  // Side files: the tokenizer source's (the base's by default), the config's dtype, the card.
  void write_side(const std::string& folder) const {
    std::string rescale_label = "none";
    if (method->kind == MergeKind::TaskArithmetic)
      rescale_label =
          merge_param(cfg, -1, "rescale", "", 0, method->default_rescale) != 0 ? rescale_name(rescale_norm) : "none";
    std::string side_from = layout->path();
    if (!cfg.tokenizer_source.empty() && cfg.tokenizer_source != "base") side_from = cfg.tokenizer_source;
    std::error_code ec;
    if (!fs::is_directory(side_from, ec)) side_from.clear();  // a one-file checkpoint: no side files
    std::map<std::string, std::string> overrides = {{"merge.yml", cfg.source_text},
                                                    {"README.md", model_card(cfg, *method, rescale_label)}};
    const fs::path cfg_json = fs::path(layout->path()) / "config.json";
    if ((!cfg.dtype.empty() || !cfg.slices.empty()) && fs::is_regular_file(cfg_json, ec)) {
      auto j = nlohmann::ordered_json::parse(read_whole_file(cfg_json.string(), "config.json"), nullptr, false);
      if (j.is_object()) {
        if (!cfg.dtype.empty()) j["torch_dtype"] = torch_dtype_name(output_dtype(cfg.dtype, DType::F32));
        if (!cfg.slices.empty()) j["num_hidden_layers"] = out_layers;  // the stacked model's depth
        overrides["config.json"] = j.dump(2) + "\n";
      }
    }
    write_side_files(side_from, folder, overrides);
  }
};

}  // namespace

MergeReport run_merge(const MergeOptions& opt) {
  SerialComm serial;
  return run_merge(opt, serial);
}

MergeReport run_merge(const MergeOptions& opt, Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  MergeJob m(opt);
  collectively(comm, [&] { m.open(); });
  if (opt.threads > 0) omp_set_num_threads(opt.threads);
  const uint64_t max_shard = m.max_shard_bytes();
  const ShardPlan plan = plan_shards(m.specs, max_shard);
  Job job(comm, m.job_spec(plan, max_shard));
  MergeReport rep;
  // a rank's threads each take a shard; a whole-tensor method's OpenMP loops then run on one
  // thread per shard (a single worker keeps them on every thread)
  const unsigned threads = opt.threads ? opt.threads : default_threads_per_rank(comm);
  const unsigned workers =
      std::min<size_t>(m.devices->gpu() ? std::min(threads, gpu::DevicePool::kWorkersPerGpu) : threads,
                       plan.shards.size());  // on a GPU, two: one's copies overlap the other's kernels
  if (const std::string w = threads_warning(threads); !w.empty() && comm.is_root()) rep.warnings.push_back(w);
  std::mutex report_mutex;
  std::map<size_t, std::vector<std::string>> warnings_of;  // per shard, reported in shard order
  job.run_items(
      [&](size_t s, const std::string& path) {
        if (workers > 1) omp_set_num_threads(1);  // this worker thread's own OpenMP setting
        std::unique_ptr<MergeJob::Buffers> buf = m.take_buffers();
        MergeReport mine;
        SafetensorsWriter w(path, plan.shards[s], {{"format", "pt"}});
        for (const auto& spec : plan.shards[s]) {
          m.merge_one(*buf, spec, mine, [&](std::span<const uint8_t> out) {
            w.write(out.data(), out.size());
            mine.bytes_written += out.size();
          });
          ++mine.tensors;
        }
        w.commit();
        m.give_back(std::move(buf));
        std::lock_guard<std::mutex> lock(report_mutex);
        rep.tensors += mine.tensors, rep.bytes_written += mine.bytes_written, rep.bytes_read += mine.bytes_read;
        warnings_of[s] = std::move(mine.warnings);
      },
      {}, [&] { m.check_intact(); }, workers);
  for (auto& [s, warnings] : warnings_of) rep.warnings.insert(rep.warnings.end(), warnings.begin(), warnings.end());
  rep.complete = job.commit(
      [&](JobJournal& journal) { make_checkpoint_folder(journal, plan, [&] { m.write_side(journal.dir()); }); });
  uint64_t totals[3] = {rep.tensors, rep.bytes_written, rep.bytes_read};
  comm.allreduce_sum(totals);
  rep.tensors = totals[0], rep.bytes_written = totals[1], rep.bytes_read = totals[2];
  rep.shards = plan.shards.size();
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
