// deltakit apply --base B --adapter A --out DIR [--alpha 1.0] [--force]
#include <iostream>

#include "apps/cli_common.h"
#include "formats/checkpoint.h"
#include "src/pipeline/apply.h"

namespace deltakit::cli {

int cmd_apply(const Args& args) {
  po::options_description opts("apply options");
  opts.add_options()("base", po::value<std::string>(), "base checkpoint the adapter was made from")(
      "adapter", po::value<std::string>(), "adapter file")("out", po::value<std::string>(),
                                                           "checkpoint folder to write")(
      "alpha", po::value<float>()->default_value(1.0f), "scale of the decoded delta (exact at 1; >1 extrapolates)")(
      "force", po::bool_switch(), "apply even if the base's fingerprints differ (warns)")(
      "overwrite", po::bool_switch(), "replace an existing output folder (atomically)")(
      "max-shard-size", po::value<std::string>()->default_value("5GB"), "largest output shard (HF default 5GB)")(
      "threads", po::value<unsigned>()->default_value(0), "shards written at once (0: all cores)");
  add_job_options(opts);
  add_device_option(opts);
  po::variables_map vm;
  if (!parse("apply", "--base B --adapter A --out DIR [--alpha 1.0]", opts, {}, args, vm)) return 0;
  require(vm, {"base", "adapter", "out"});
  ApplyOptions o;
  o.base = vm["base"].as<std::string>();
  o.adapter = vm["adapter"].as<std::string>();
  o.out = vm["out"].as<std::string>();
  o.alpha = vm["alpha"].as<float>();
  o.force = vm["force"].as<bool>();
  o.overwrite = vm["overwrite"].as<bool>();
  o.max_shard_bytes = parse_byte_size(vm["max-shard-size"].as<std::string>());
  o.resume = vm["resume"].as<bool>();
  o.threads = vm["threads"].as<unsigned>();
  o.progress = progress_options(vm);
  o.device = device_option(vm);
  ApplyReport r = run_apply(o, world());
  for (const auto& w : r.warnings)  // each rank saw its own tensors
    std::cerr << "deltakit apply: warning: " << w << "\n";
  if (!r.complete) return 0;
  std::printf("wrote %s: %llu tensors in %llu shard(s), %s in %.3f s\n", o.out.c_str(),
              static_cast<unsigned long long>(r.tensors), static_cast<unsigned long long>(r.shards),
              human_bytes(double(r.bytes_written)).c_str(), r.seconds);
  return 0;
}

}  // namespace deltakit::cli
