// deltakit eval: perplexity, skill accuracy and divergent-token metrics of one model, any mix of
// them in one call, with one JSON object at the end.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "src/core/error.h"
#include "src/core/whole_file.h"
#include "src/eval/divergence.h"
#include "src/eval/evaluate.h"
#include "src/model/kernels.h"
#include "src/eval/prompts.h"
#include "src/eval/skills.h"
#include "src/model/tokenizer.h"

namespace deltakit::cli {

int cmd_eval(const Args& args) {
  po::options_description opts("eval options");
  opts.add_options()("model", po::value<std::string>(), "model folder")("tokens", po::value<std::string>(),
                                                                        "file of little-endian uint32 token ids")(
      "text", po::value<std::string>(), "text file, tokenized with the model's tokenizer")(
      "corpus", po::bool_switch(), "held-out lines of the embedded corpus (byte-tokenized models)")(
      "task", po::value<std::vector<std::string>>()->composing(), "skill exact match (repeatable; 'all')")(
      "samples", po::value<int64_t>()->default_value(200), "examples per --task")(
      "window", po::value<int64_t>(), "predictions per window (default: the model's context)")(
      "max-tokens", po::value<int64_t>()->default_value(0), "use only the first N tokens (0: all)")(
      "reference", po::value<std::string>(), "divergent-token metrics against this model (the uncompressed fine-tune)")(
      "prompts-from", po::value<std::string>()->default_value("corpus"),
      "prompts for --reference: corpus | skill:NAME | tokens:FILE | lines:FILE")(
      "prompts", po::value<int64_t>()->default_value(64), "prompts for --reference")(
      "prompt-len", po::value<int64_t>()->default_value(16), "tokens per prompt (corpus, tokens:FILE)")(
      "new-tokens", po::value<int64_t>()->default_value(32), "N: tokens the reference continues each prompt by")(
      "tau", po::value<int64_t>()->default_value(-1), "report the share of prompts with FDT >= tau (-1: N)")(
      "threads", po::value<int>()->default_value(0), "threads (0: all cores)")(
      "json", po::bool_switch(), "end with one JSON object on the last line");
  po::variables_map vm;
  if (!parse("eval", "--model DIR [--tokens FILE | --text FILE | --corpus] [--task T] [--reference DIR] [--json]", opts,
             {}, args, vm))
    return 0;
  require(vm, {"model"});
  kernels::set_threads(vm["threads"].as<int>());
  const std::string dir = vm["model"].as<std::string>();
  LlamaParams p = load_llama(dir);
  const int64_t window = vm.count("window") ? vm["window"].as<int64_t>() : static_cast<int64_t>(p.config().max_seq);
  if (window < 1) throw Error(ErrorCode::Usage, "", "--window must be >= 1");
  nlohmann::ordered_json j;
  j["model"] = dir;
  auto report_loss = [&](const std::string& what, std::vector<int32_t> ids) {
    const int64_t cap = vm["max-tokens"].as<int64_t>();
    if (cap > 0 && static_cast<int64_t>(ids.size()) > cap) ids.resize(static_cast<size_t>(cap));
    LossReport r = evaluate_loss(p, ids, window);
    std::printf("%s: loss %.4f perplexity %.3f over %lld tokens (%lld windows of %lld)\n", what.c_str(), r.loss,
                r.perplexity, static_cast<long long>(r.tokens), static_cast<long long>(r.windows),
                static_cast<long long>(std::min<int64_t>(window, static_cast<int64_t>(p.config().max_seq))));
    j["loss"] = r.loss, j["perplexity"] = r.perplexity, j["tokens"] = r.tokens, j["windows"] = r.windows;
    j["source"] = what;
  };
  if (vm.count("tokens"))
    report_loss(vm["tokens"].as<std::string>(), read_token_file(vm["tokens"].as<std::string>(), p.config().vocab));
  if (vm.count("text") || vm["corpus"].as<bool>()) {
    auto tok = load_tokenizer(dir, p.config().vocab);
    if (!tok)
      throw Error(ErrorCode::Usage, dir, "the model declares no tokenizer (deltakit_tokenizer.json); use --tokens");
    if (vm.count("text")) {
      const std::string path = vm["text"].as<std::string>();
      std::vector<int32_t> ids = {tok->bos()};
      for (int32_t id : tok->encode(read_whole_file(path, "text"))) ids.push_back(id);
      report_loss(path, ids);
    } else {
      if (tok->vocab() != ByteTokenizer::kVocab)
        throw Error(ErrorCode::Usage, dir, "--corpus needs a byte-tokenized model");
      report_loss("corpus (held out)", corpus_tokens(kEvalStream, 400));
    }
  }
  if (vm.count("task")) {
    std::vector<std::string> tasks;
    for (const auto& t : vm["task"].as<std::vector<std::string>>()) {
      if (t == "all") {
        for (const auto& s : skill_names()) tasks.push_back(s);
      } else if (!is_skill(t)) {
        throw Error(ErrorCode::Usage, "", "unknown task \"" + t + "\" (rev, sort, caps, dup, add, get, all)");
      } else {
        tasks.push_back(t);
      }
    }
    auto tok = load_tokenizer(dir, p.config().vocab);
    if (!tok || tok->vocab() != ByteTokenizer::kVocab)
      throw Error(ErrorCode::Usage, dir, "skills are written in the byte tokenizer; this model does not use it");
    for (const auto& t : tasks) {
      SkillReport r = evaluate_skill(p, t, vm["samples"].as<int64_t>(), kEvalStream);
      std::printf("task %-5s exact match %6.1f%% (%lld/%lld)   e.g. %s\n", t.c_str(), 100.0 * r.accuracy(),
                  static_cast<long long>(r.correct), static_cast<long long>(r.total),
                  r.samples.empty() ? "" : r.samples[0].c_str());
      j["tasks"][t] = {{"accuracy", r.accuracy()}, {"correct", r.correct}, {"total", r.total}};
    }
  }
  if (vm.count("reference")) {
    const std::string ref_dir = vm["reference"].as<std::string>();
    const LlamaParams ref = load_llama(ref_dir);
    const std::string source = vm["prompts-from"].as<std::string>();
    const auto prompts =
        make_prompts(source, vm["prompts"].as<int64_t>(), vm["prompt-len"].as<int64_t>(), p.config().vocab);
    DivergenceOptions o;
    o.new_tokens = vm["new-tokens"].as<int64_t>();
    o.tau = vm["tau"].as<int64_t>();
    DivergenceReport r;
    r = locate_invalid_values(ErrorCode::Usage, dir, [&] { return divergent_tokens(ref, p, prompts, o); });
    std::printf(
        "vs %s: %lld prompts (%s) x %lld tokens: FDT mean %.2f median %.1f, SDT %.4f, FDT >= %lld in %.1f%%, "
        "KL %.3g nats/token\n",
        ref_dir.c_str(), static_cast<long long>(r.prompts), source.c_str(), static_cast<long long>(r.new_tokens),
        r.fdt_mean, r.fdt_median, r.sdt_mean, static_cast<long long>(r.tau), 100.0 * r.share_fdt_at_least_tau,
        r.kl_mean);
    if (r.reference_ties)
      std::printf(
          "  (%lld positions where the reference's forward argmax differs from its generated token: near-ties)\n",
          static_cast<long long>(r.reference_ties));
    j["reference"] = {{"model", ref_dir},
                      {"prompts", r.prompts},
                      {"source", source},
                      {"new_tokens", r.new_tokens},
                      {"fdt_mean", r.fdt_mean},
                      {"fdt_median", r.fdt_median},
                      {"sdt_mean", r.sdt_mean},
                      {"tau", r.tau},
                      {"share_fdt_at_least_tau", r.share_fdt_at_least_tau},
                      {"kl_mean", r.kl_mean},
                      {"reference_ties", r.reference_ties}};
  }
  if (!vm.count("tokens") && !vm.count("text") && !vm["corpus"].as<bool>() && !vm.count("task") &&
      !vm.count("reference"))
    throw Error(ErrorCode::Usage, "", "nothing to evaluate: give --tokens, --text, --corpus, --task or --reference");
  if (vm["json"].as<bool>()) std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace deltakit::cli
