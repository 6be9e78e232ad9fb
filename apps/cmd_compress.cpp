// deltakit compress --base B --finetuned F (--recipe R [--only GLOB] | --rules FILE) --out A.h5
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "apps/cli_common.h"
#include "src/core/error.h"
#include "src/pipeline/compress.h"
#include "src/pipeline/distill.h"

namespace deltakit::cli {

int cmd_compress(const Args& args) {
  po::options_description opts("compress options");
  opts.add_options()("base", po::value<std::string>(), "base checkpoint")("finetuned", po::value<std::string>(),
                                                                          "fine-tuned checkpoint")(
      "recipe", po::value<std::string>()->default_value("raw"),
      "codec recipe, e.g. \"bitdelta\", \"dare:p=0.9\", \"dare:p=0.5 > bitdelta:scale=row + cherry:frac=0.005\"")(
      "only", po::value<std::string>()->default_value(""),
      "apply --recipe only to tensors matching this glob; raw elsewhere")(
      "rules", po::value<std::string>()->default_value(""), "YAML/JSON rules file mapping name globs to recipes")(
      "seed", po::value<uint64_t>()->default_value(0), "default seed of dare and randomized lowrank")(
      "threads", po::value<unsigned>()->default_value(0), "worker threads (0: all cores)")(
      "zstd-level", po::value<int>()->default_value(kDefaultZstdLevel), "zstd level of the adapter's datasets (1-19)")(
      "split-mb", po::value<std::string>()->default_value("auto"),
      "split a tensor whose fp32 delta is over this many MB into row blocks that ranks and threads share "
      "(bitdelta or quant alone; the same adapter bytes; 0: never; auto: over 256 MB and over one worker's "
      "share of the model)")("out", po::value<std::string>(), "adapter file to write (.h5)")(
      "overwrite", po::bool_switch(), "replace an existing output (atomically)")("json", po::bool_switch(),
                                                                                 "print a JSON summary")(
      "distill", po::bool_switch(), "then fit the bitdelta scales to the fine-tune's logits (signs fixed)")(
      "calibration", po::value<std::string>()->default_value("corpus"),
      "--distill's data: corpus | skill:NAME | tokens:FILE")("distill-steps", po::value<int64_t>()->default_value(200),
                                                             "--distill: Adam steps")(
      "distill-batch", po::value<int64_t>()->default_value(4), "--distill: sequences per step")(
      "distill-seq-len", po::value<int64_t>()->default_value(0),
      "--distill: tokens per sequence (0: 128, or the context if shorter)")(
      "distill-lr", po::value<double>()->default_value(1e-4), "--distill: peak learning rate (cosine to 0)");
  add_job_options(opts);
  add_device_option(opts);
  po::variables_map vm;
  if (!parse("compress", "--base B --finetuned F (--recipe R [--only GLOB] | --rules FILE) --out A.h5", opts, {}, args,
             vm))
    return 0;
  require(vm, {"base", "finetuned", "out"});
  CompressOptions o;
  o.base = vm["base"].as<std::string>();
  o.finetuned = vm["finetuned"].as<std::string>();
  o.out = vm["out"].as<std::string>();
  o.recipe = vm["recipe"].as<std::string>();
  o.only = vm["only"].as<std::string>();
  o.rules_file = vm["rules"].as<std::string>();
  o.seed = vm["seed"].as<uint64_t>();
  o.threads = vm["threads"].as<unsigned>();
  o.zstd_level = vm["zstd-level"].as<int>();
  if (const std::string split = vm["split-mb"].as<std::string>(); split != "auto") {
    size_t used = 0;
    try {
      o.split_mb = std::stod(split, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != split.size() || !(o.split_mb >= 0 && o.split_mb <= 1e9))
      throw Error(ErrorCode::Usage, "",
                  "--split-mb must be auto or a number of MB from 0 (never split) up, not \"" + split + "\"");
  }
  o.overwrite = vm["overwrite"].as<bool>();
  o.resume = vm["resume"].as<bool>();
  o.progress = progress_options(vm);
  o.device = device_option(vm);
  if (!o.rules_file.empty() && (!vm["recipe"].defaulted() || !o.only.empty()))
    throw Error(ErrorCode::Usage, "", "give either --recipe [--only] or --rules, not both");
  if (o.zstd_level < 1 || o.zstd_level > 19) throw Error(ErrorCode::Usage, "", "--zstd-level must be 1..19");
  if (vm["distill"].as<bool>()) {
    DistillOptions d;
    d.calibration = vm["calibration"].as<std::string>();
    d.steps = vm["distill-steps"].as<int64_t>(), d.batch = vm["distill-batch"].as<int64_t>();
    d.seq_len = vm["distill-seq-len"].as<int64_t>(), d.lr = vm["distill-lr"].as<double>();
    o.distill = d;
  }
  const CompressReport r = run_compress(o, world());
  if (!r.complete) return 0;  // ranks other than 0: rank 0 reports
  const std::optional<DistillReport>& dr = r.distillation;
  for (const auto& w : r.warnings) warn("compress", w);
  std::map<std::string, uint64_t> by_codec;
  uint64_t patches = 0;
  for (const auto& t : r.tensors) ++by_codec[t.codec], patches += t.exact_patches;
  double gbps = r.seconds > 0 ? r.input_bytes / r.seconds / 1e9 : 0.0;
  if (vm["json"].as<bool>()) {
    std::cout << nlohmann::ordered_json{{"out", o.out},
                                        {"tensors", r.tensors.size()},
                                        {"codecs", by_codec},
                                        {"exact_patches", patches},
                                        {"input_bytes", r.input_bytes},
                                        {"adapter_bytes", r.adapter_bytes},
                                        {"seconds", r.seconds},
                                        {"ranks", world().size()},
                                        {"resumed", r.resumed},
                                        {"rel_error", r.rel_error},
                                        {"distillation", dr ? nlohmann::ordered_json{{"tensors", dr->tensors},
                                                                                     {"scales", dr->scales},
                                                                                     {"loss_before", dr->loss_before},
                                                                                     {"loss_after", dr->loss_after},
                                                                                     {"seconds", dr->seconds}}
                                                            : nlohmann::ordered_json()}}
                     .dump()
              << "\n";
    return 0;
  }
  std::string codecs;
  for (const auto& [c, n] : by_codec) codecs += (codecs.empty() ? "" : ", ") + std::to_string(n) + " " + c;
  std::printf(
      "wrote %s: %zu tensors (%s), %s from %s of fine-tune (%.1fx smaller), relative error %.3g, in %.3f s "
      "(%.2f GB/s, %d rank%s)\n",
      o.out.c_str(), r.tensors.size(), codecs.c_str(), human_bytes(double(r.adapter_bytes)).c_str(),
      human_bytes(double(r.input_bytes)).c_str(), r.adapter_bytes ? double(r.input_bytes) / r.adapter_bytes : 0.0,
      r.rel_error, r.seconds, gbps, world().size(), world().size() > 1 ? "s" : "");
  if (dr)
    std::printf("distilled %llu scales of %llu bitdelta tensors on %s: held-out logit loss %.6g -> %.6g (%.1f s)\n",
                static_cast<unsigned long long>(dr->scales), static_cast<unsigned long long>(dr->tensors),
                o.distill->calibration.c_str(), dr->loss_before, dr->loss_after, dr->seconds);
  return 0;
}

}  // namespace deltakit::cli
