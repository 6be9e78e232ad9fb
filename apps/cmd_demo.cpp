// deltakit demo [--out DIR] [--size tiny|small|medium|large]: the main job on the embedded
// default (today: the lossless round trip on generated checkpoints), one table at the end.
#include <cstdio>

#include "apps/cli_common.h"
#include "src/pipeline/demo.h"

namespace deltakit::cli {

int cmd_demo(const Args& args) {
  po::options_description opts("demo options");
  opts.add_options()("out", po::value<std::string>()->default_value("deltakit-demo"), "work folder")(
      "size", po::value<std::string>()->default_value("small"), "fixture size: tiny | small | medium | large")(
      "overwrite", po::bool_switch(), "replace outputs of an earlier run");
  po::variables_map vm;
  if (!parse("demo", "[--out DIR] [--size small]", opts, {}, args, vm)) return 0;
  auto rows = run_demo(vm["out"].as<std::string>(), vm["size"].as<std::string>(), vm["overwrite"].as<bool>());
  std::printf("%-6s %-8s %8s %12s %12s %9s %10s %9s  %s\n", "dtype", "layout", "tensors", "fine-tune", "adapter",
              "|d|/|w|", "compress", "apply", "round trip");
  int bad = 0;
  for (const auto& r : rows) {
    bad += r.mismatched_tensors != 0;
    std::printf("%-6s %-8s %8llu %12s %12s %9.2e %9.3fs %8.3fs  %s\n", r.dtype.c_str(), r.layout.c_str(),
                static_cast<unsigned long long>(r.tensors), human_bytes(double(r.finetune_bytes)).c_str(),
                human_bytes(double(r.adapter_bytes)).c_str(), r.rel_delta, r.compress_s, r.apply_s,
                r.mismatched_tensors ? "MISMATCH" : "bit-exact");
  }
  std::printf("outputs in %s (raw adapters store the fp32 delta: lossless, not small; lossy codecs: compress --recipe, see README)\n",
              vm["out"].as<std::string>().c_str());
  return bad ? 1 : 0;
}

}  // namespace deltakit::cli
