// deltakit importance: Fisher or activation importance of a model's weights on calibration data,
// written as safetensors for the cherry codec (src/eval/importance.h documents the file).
#include <chrono>
#include <cstdio>

#include "apps/cli_common.h"
#include "src/core/error.h"
#include "src/eval/calibration.h"
#include "src/eval/importance.h"
#include "src/model/kernels.h"

namespace deltakit::cli {

int cmd_importance(const Args& args) {
  po::options_description opts("importance options");
  opts.add_options()("model", po::value<std::string>(), "model folder (normally the fine-tune)")(
      "kind", po::value<std::string>(), "fisher (diagonal empirical Fisher) | act (E[x_c^2] per linear input column)")(
      "out", po::value<std::string>(), "output .safetensors")(
      "calibration", po::value<std::string>()->default_value("corpus"), "corpus | skill:NAME | tokens:FILE")(
      "samples", po::value<int64_t>()->default_value(128), "calibration sequences")(
      "seq-len", po::value<int64_t>()->default_value(64), "tokens per sequence")(
      "threads", po::value<int>()->default_value(0), "threads (0: all cores)")("overwrite", po::bool_switch(),
                                                                               "replace an existing output");
  po::variables_map vm;
  if (!parse("importance", "--model DIR --kind fisher|act --out FILE [--calibration SRC] [--samples N] [--seq-len T]",
             opts, {}, args, vm))
    return 0;
  require(vm, {"model", "kind", "out"});
  const std::string kind = vm["kind"].as<std::string>(), source = vm["calibration"].as<std::string>();
  if (kind != "fisher" && kind != "act") throw Error(ErrorCode::Usage, "", "--kind must be fisher or act");
  ImportanceOptions o;
  o.samples = vm["samples"].as<int64_t>(), o.seq_len = vm["seq-len"].as<int64_t>();
  if (o.samples < 1 || o.seq_len < 2) throw Error(ErrorCode::Usage, "", "--samples must be >= 1 and --seq-len >= 2");
  kernels::set_threads(vm["threads"].as<int>());
  const std::string dir = vm["model"].as<std::string>(), out = vm["out"].as<std::string>();
  LlamaParams p = load_llama(dir);
  if (o.seq_len > static_cast<int64_t>(p.config().max_seq))
    throw Error(ErrorCode::Usage, "",
                "--seq-len " + std::to_string(o.seq_len) + " exceeds the model's context of " +
                    std::to_string(p.config().max_seq));
  const BatchFn calibration = calibration_batches(source, p.config().vocab);
  const auto t0 = std::chrono::steady_clock::now();
  const auto tensors =
      kind == "fisher" ? fisher_diagonal(p, calibration, o) : activation_second_moments(p, calibration, o);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_importance(out, tensors,
                   {{"format", "pt"},
                    {"deltakit.importance", kind},
                    {"deltakit.samples", std::to_string(o.samples)},
                    {"deltakit.seq_len", std::to_string(o.seq_len)},
                    {"deltakit.source", source},
                    {"deltakit.model", dir}},
                   vm["overwrite"].as<bool>());
  const double params = static_cast<double>(p.data().size());
  std::printf(
      "%s importance of %s on %lld x %lld tokens of %s: %zu tensors in %.2f s (%.3f s per million parameters)"
      " -> %s\n",
      kind.c_str(), dir.c_str(), static_cast<long long>(o.samples), static_cast<long long>(o.seq_len), source.c_str(),
      tensors.size(), seconds, seconds / (params / 1e6), out.c_str());
  return 0;
}

}  // namespace deltakit::cli
