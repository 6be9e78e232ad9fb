// deltakit merge CONFIG.yml --out DIR [--dtype D] [--threads N] [--max-shard-size S] [--device cpu|cuda]
#include <algorithm>
#include <iostream>

#include "apps/cli_common.h"
#include "formats/checkpoint.h"
#include "src/pipeline/merge.h"

namespace deltakit::cli {

int cmd_merge(const Args& args) {
  po::options_description opts("merge options");
  opts.add_options()("config", po::value<std::string>(), "mergekit-style YAML (merge_method, base_model, models, ...)")(
      "out", po::value<std::string>(), "checkpoint folder to write")(
      "dtype", po::value<std::string>(), "output dtype, over the config's: float32 | float16 | bfloat16")(
      "threads", po::value<int>()->default_value(0), "OpenMP threads per rank (0: all cores)")(
      "force", po::bool_switch(), "merge adapters even if the base's fingerprints differ (warns)")(
      "overwrite", po::bool_switch(), "replace an existing output folder (atomically)")(
      "max-shard-size", po::value<std::string>(), "largest output shard (default: the base's largest shard)");
  add_job_options(opts);
  add_device_option(opts);
  po::positional_options_description pos;
  pos.add("config", 1);
  po::variables_map vm;
  if (!parse("merge", "CONFIG.yml --out DIR [--dtype bfloat16] [--threads N]", opts, pos, args, vm)) return 0;
  require(vm, {"config", "out"});
  MergeOptions o;
  o.config = vm["config"].as<std::string>();
  o.out = vm["out"].as<std::string>();
  if (vm.count("dtype")) o.dtype = vm["dtype"].as<std::string>();
  o.threads = vm["threads"].as<int>();
  o.force = vm["force"].as<bool>();
  o.overwrite = vm["overwrite"].as<bool>();
  if (vm.count("max-shard-size")) o.max_shard_bytes = parse_byte_size(vm["max-shard-size"].as<std::string>());
  o.resume = vm["resume"].as<bool>();
  o.progress = progress_options(vm);
  o.device = device_option(vm);
  MergeReport r = run_merge(o, world());
  // each distinct warning once per rank (a grown vocabulary warns once per tensor read)
  std::vector<std::string> seen;
  for (const auto& w : r.warnings)
    if (std::find(seen.begin(), seen.end(), w) == seen.end()) {
      seen.push_back(w);
      std::cerr << "deltakit merge: warning: " << w << "\n";
    }
  if (!r.complete) return 0;
  std::printf("wrote %s: %llu tensors in %llu shard(s), %s in %.3f s (read %s, %.2f GB/s)\n", o.out.c_str(),
              static_cast<unsigned long long>(r.tensors), static_cast<unsigned long long>(r.shards),
              human_bytes(double(r.bytes_written)).c_str(), r.seconds, human_bytes(double(r.bytes_read)).c_str(),
              r.seconds > 0 ? r.bytes_read / r.seconds / 1e9 : 0.0);
  return 0;
}

}  // namespace deltakit::cli
