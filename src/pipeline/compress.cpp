#include "src/pipeline/compress.h"

#include <chrono>
#include <filesystem>

#include "formats/adapter_file.h"
#include "formats/checkpoint.h"
#include "src/codec/raw.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/fingerprint.h"
#include "src/pipeline/pair_check.h"
#include "src/pipeline/side_files.h"

namespace deltakit {

namespace {
std::span<const uint8_t> as_bytes(const void* p, size_t n) { return {static_cast<const uint8_t*>(p), n}; }
}  // namespace

CompressReport run_compress(const CompressOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  if (opt.recipe != "raw")
    throw Error(ErrorCode::Usage, "",
                "recipe \"" + opt.recipe + "\" is not available yet (this build has the lossless \"raw\" codec)");
  // fail fast: every header, the pairing and the output path before any tensor byte is read
  Checkpoint base(opt.base);
  Checkpoint ft(opt.finetuned);
  check_same_tensors(base, ft);
  const std::string inputs[] = {opt.base, opt.finetuned};
  check_output_path(opt.out, inputs, opt.overwrite);

  CompressReport rep;
  std::vector<std::string> skipped;
  auto side = read_text_side_files(opt.finetuned, &skipped);
  for (const auto& s : skipped)
    rep.warnings.push_back(opt.finetuned + ": side file " + s + " is binary or over 16 MB; apply takes it from the base");
  uint64_t reserve = 4096;
  for (const auto& n : ft.names()) reserve += 4 * n.size() + 320;
  for (const auto& [k, v] : side) reserve += 4 * (k.size() + v.size());

  AdapterWriter writer(opt.out, reserve);
  for (const auto& name : ft.names()) {
    TensorView bv = base.acquire(name), fv = ft.acquire(name);
    CompressTensorReport tr;
    tr.name = name;
    tr.numel = fv.numel();
    tr.input_bytes = fv.bytes.size();
    // the delta streams into the file block by block; the patch list follows it
    bool delta_started = false;
    RawEncoded d = raw_encode(bv, fv, [&](std::span<const float> block) {
      if (!delta_started) writer.begin_part(name, "delta", DType::F32, fv.shape), delta_started = true;
      writer.write_part(block.data(), block.size_bytes());
    });
    if (!d.exact_index.empty()) {
      const uint64_t k = d.exact_index.size();
      writer.add_part(name, {"exact_index", DType::U64, {k}, as_bytes(d.exact_index.data(), k * 8)});
      writer.add_part(name, {"exact_bits", fv.dtype, {k}, as_bytes(d.exact_bits.data(), d.exact_bits.size())});
    } else if (d.mode == RawMode::Replace) {
      writer.add_part(name, {"replacement", fv.dtype, fv.shape, fv.bytes});
    }
    nlohmann::ordered_json rec;
    rec["codec"] = "raw";
    rec["mode"] = raw_mode_name(d.mode);
    rec["dtype"] = std::string(dtype_name(fv.dtype));
    rec["shape"] = fv.shape;
    rec["base_fingerprint"] = fingerprint_hex(fingerprint64(bv.bytes));
    rec["rel_error"] = 0.0;
    if (d.mode == RawMode::Delta) rec["exact_patches"] = d.exact_index.size();
    tr.stored_bytes = writer.end_tensor(name, std::move(rec));
    if (d.nonfinite)
      rep.warnings.push_back(opt.finetuned + ": tensor '" + name + "' has " + std::to_string(d.nonfinite) +
                             " NaN/Inf entries (carried exactly by raw)");
    base.release(name);
    ft.release(name);
    tr.mode = raw_mode_name(d.mode);
    tr.exact_patches = d.exact_index.size();
    tr.nonfinite = d.nonfinite;
    rep.input_bytes += tr.input_bytes;
    rep.tensors.push_back(std::move(tr));
  }
  base.check_intact();
  ft.check_intact();
  writer.commit({{"recipe", opt.recipe},
                 {"base", opt.base},
                 {"finetuned", opt.finetuned}},
                side);
  rep.adapter_bytes = std::filesystem::file_size(opt.out);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

}  // namespace deltakit
