#include "src/pipeline/compress.h"

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
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/pipeline/pair_check.h"
#include "src/pipeline/recipe_rules.h"
#include "src/pipeline/side_files.h"

namespace deltakit {

namespace {

// Importance files named by cherry recipes, opened once each.
class ImportanceFiles {
 public:
  // H for one tensor, decoded to fp32 and checked (finite, >= 0, the right size).
  std::vector<float> load(const CherryParams& c, const std::string& tensor, uint64_t numel, uint64_t cols) {
    auto it = files_.find(c.file);
    if (it == files_.end()) it = files_.emplace(c.file, std::make_unique<SafetensorsFile>(c.file)).first;
    const SafetensorsFile& f = *it->second;
    const SafetensorsEntry* e = f.find(tensor);
    if (!e) throw Error(ErrorCode::TensorSetMismatch, c.file, "importance file has no tensor '" + tensor + "'");
    TensorView v = f.view(*e);
    const uint64_t want = c.importance == "fisher" ? numel : cols;
    if (!dtype_is_float_decodable(v.dtype) || v.numel() != want)
      throw Error(ErrorCode::ShapeMismatch, c.file,
                  "importance '" + tensor + "' must be " + std::to_string(want) + " F32/F16/BF16 values (" +
                      (c.importance == "fisher" ? "one per weight" : "one per input column") + "), found " +
                      shape_string(v.shape) + " " + std::string(dtype_name(v.dtype)));
    std::vector<float> h(want);
    decode_to_f32(v.dtype, v.bytes, 0, h);
    for (float x : h)
      if (!std::isfinite(x) || x < 0)
        throw Error(ErrorCode::NonFinite, c.file, "importance '" + tensor + "' holds a negative or non-finite value");
    return h;
  }

 private:
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

Part bytes_part(const std::string& name, std::span<const uint8_t> b) {
  return {name, PartKind::U8, {b.size()}, {b.begin(), b.end()}, ""};
}

// The raw codec's parts: exact delta (fp32) plus patches, or the fine-tune's bytes.
void encode_raw(const TensorView& bv, const TensorView& fv, Json& attrs, std::vector<Part>& parts,
                CompressTensorReport& tr) {
  std::vector<uint8_t> delta;  // the fp32 delta's bytes, as the part stores them
  delta.reserve(fv.numel() * 4);
  RawEncoded d = raw_encode(bv, fv, [&](std::span<const float> block) {
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
      parts.push_back({"raw.exact_index", PartKind::U64, {d.exact_index.size()}, bytes_of<uint64_t>(d.exact_index), ""});
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

}  // namespace

CompressReport run_compress(const CompressOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  // fail fast: recipe, every header, the pairing and the output path before any tensor byte
  RecipeRules rules = opt.rules_file.empty() ? RecipeRules::single(opt.recipe, opt.only, opt.seed)
                                             : RecipeRules::from_file(opt.rules_file, opt.seed);
  Checkpoint base(opt.base);
  Checkpoint ft(opt.finetuned);
  check_same_tensors(base, ft);
  const std::string inputs[] = {opt.base, opt.finetuned};
  check_output_path(opt.out, inputs, opt.overwrite);
  for (const auto& name : ft.names())
    if (name.empty()) throw Error(ErrorCode::Usage, opt.finetuned, "a tensor with an empty name cannot be stored in an adapter");

  CompressReport rep;
  std::vector<std::string> skipped;
  auto side = read_text_side_files(opt.finetuned, &skipped);
  for (const auto& s : skipped)
    rep.warnings.push_back(opt.finetuned + ": side file " + s + " is binary or over 16 MB; apply takes it from the base");

  ImportanceFiles importance;
  std::map<std::string, uint64_t> fallbacks;
  std::string fingerprints;
  AdapterWriter writer(opt.out, opt.zstd_level);
  for (const auto& name : ft.names()) {
    TensorView bv = base.acquire(name), fv = ft.acquire(name);
    CompressTensorReport tr;
    tr.name = name;
    tr.numel = fv.numel();
    tr.input_bytes = fv.bytes.size();
    const uint64_t fp = fingerprint64(bv.bytes);
    fingerprints.append(reinterpret_cast<const char*>(&fp), 8);
    Json attrs = Json::object();
    attrs["dtype"] = std::string(dtype_name(fv.dtype));
    attrs["shape"] = fv.shape;
    attrs["base_fingerprint"] = fp;
    std::vector<Part> parts;
    const Recipe& recipe = rules.for_tensor(name);
    const bool changed = bv.bytes.size() != fv.bytes.size() || std::memcmp(bv.bytes.data(), fv.bytes.data(), bv.bytes.size()) != 0;
    tr.fallback = changed ? recipe_unsuitable(recipe, fv.dtype, fv.shape) : "";
    std::vector<float> delta;
    if (changed && !recipe.is_raw() && tr.fallback.empty()) {
      delta.resize(fv.numel());
      std::vector<float> b(fv.numel());
      decode_to_f32(fv.dtype, fv.bytes, 0, delta);
      decode_to_f32(bv.dtype, bv.bytes, 0, b);
      for (uint64_t i = 0; i < delta.size(); ++i) delta[i] -= b[i];
      for (float x : delta)
        if (!std::isfinite(x)) {
          tr.fallback = "the delta has NaN/Inf entries (raw carries them exactly)";
          break;
        }
    }
    if (!changed || recipe.is_raw() || !tr.fallback.empty()) {
      encode_raw(bv, fv, attrs, parts, tr);
      attrs["rel_error"] = 0.0;
      if (!tr.fallback.empty()) ++fallbacks[tr.fallback];
    } else {
      TensorDelta td{name, fv.dtype, fv.shape, delta, {}, opt.threads};
      std::vector<float> h;
      if (recipe.cherry && recipe.cherry->importance != "magnitude") {
        h = importance.load(*recipe.cherry, name, fv.numel(), fv.cols());
        td.importance = {recipe.cherry->importance == "fisher" ? Importance::Kind::PerElement : Importance::Kind::PerColumn, h};
      }
      Encoded e = encode_tensor(recipe, td);
      std::vector<float> recon = decode_tensor(e.attrs, EncodedSource(e), fv.shape, fv.dtype, opt.out + ": tensor '" + name + "'");
      tr.rel_error = relative_error(delta, recon);
      tr.codec = e.attrs["codec"].get<std::string>();
      for (auto& [k, v] : e.attrs.items()) attrs[k] = v;
      attrs["rel_error"] = tr.rel_error;
      parts = std::move(e.parts);
    }
    if (tr.nonfinite)
      rep.warnings.push_back(opt.finetuned + ": tensor '" + name + "' has " + std::to_string(tr.nonfinite) +
                             " NaN/Inf entries (carried exactly by raw)");
    tr.stored_bytes = writer.add_tensor(name, attrs, parts);
    base.release(name);
    ft.release(name);
    rep.input_bytes += tr.input_bytes;
    rep.tensors.push_back(std::move(tr));
  }
  for (const auto& [why, count] : fallbacks)
    rep.warnings.push_back(std::to_string(count) + " tensor(s) stored raw instead: " + why);
  base.check_intact();
  ft.check_intact();
  Json root = Json::object();
  root["recipe"] = rules.summary();
  root["rules"] = rules.to_json().dump();
  root["seed"] = opt.seed;
  root["deltakit_version"] = DELTAKIT_VERSION;
  root["base"] = opt.base;
  root["finetuned"] = opt.finetuned;
  root["tensor_count"] = ft.names().size();
  root["base_fingerprint"] = fingerprint_hex(fingerprint64({reinterpret_cast<const uint8_t*>(fingerprints.data()), fingerprints.size()}));
  writer.commit(root, side);
  rep.adapter_bytes = std::filesystem::file_size(opt.out);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
