// The model-engine subcommands:
//   deltakit train [--size small | --config FILE] --out DIR        a base on the synthetic corpus
//   deltakit finetune --model BASE --task T --out DIR [--regime sft|continued]
//   deltakit eval --model DIR [--tokens FILE] [--text FILE] [--corpus] [--task T]... [--json]
//   deltakit generate --model DIR --prompt TEXT [--max-new N]
//   deltakit import-llama2c MODEL.bin --tokenizer TOK.bin --out DIR
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/whole_file.h"
#include "src/eval/embedded.h"
#include "src/eval/train_config.h"
#include "src/eval/evaluate.h"
#include "src/model/kernels.h"
#include "src/model/llama_config.h"
#include "src/model/llama2c_import.h"
#include "src/model/llama_model.h"
#include "src/eval/skills.h"
#include "src/model/tokenizer.h"

namespace deltakit::cli {

namespace {

void add_train_overrides(po::options_description& opts) {
  opts.add_options()("steps", po::value<int64_t>(), "optimizer steps")(
      "batch", po::value<int64_t>(), "sequences per step")("seq", po::value<int64_t>(), "tokens per sequence")(
      "lr", po::value<double>(), "peak learning rate")("warmup", po::value<int64_t>(), "warm-up steps")(
      "seed", po::value<uint64_t>(), "data and init seed")("threads", po::value<int>()->default_value(0),
                                                           "threads (0: all cores)")(
      "quiet", po::bool_switch(), "no progress lines")("overwrite", po::bool_switch(), "replace an existing --out");
}

void apply_overrides(const po::variables_map& vm, TrainOptions& o) {
  if (vm.count("steps")) o.steps = vm["steps"].as<int64_t>();
  if (vm.count("batch")) o.batch = vm["batch"].as<int64_t>();
  if (vm.count("seq")) o.seq = vm["seq"].as<int64_t>();
  if (vm.count("lr")) o.lr = vm["lr"].as<double>();
  if (vm.count("warmup")) o.warmup = vm["warmup"].as<int64_t>();
  if (vm.count("seed")) o.seed = vm["seed"].as<uint64_t>();
  if (o.steps < 1 || o.batch < 1 || o.seq < 2 || o.warmup < 0 || !(o.lr > 0))
    throw Error(ErrorCode::Usage, "", "steps, batch must be >= 1, seq >= 2, warmup >= 0 and lr > 0");
}

Logger progress_logger(const std::string& what, int64_t steps, bool quiet) {
  if (quiet) return {};
  const int64_t every = std::max<int64_t>(1, steps / 10);
  return [=](const TrainStep& s) {
    if (s.step % every == 0 || s.step + 1 == steps)
      std::fprintf(stderr, "%s: step %lld/%lld loss %.4f lr %.2e |g| %.3f %.1f s\n", what.c_str(),
                   static_cast<long long>(s.step + 1), static_cast<long long>(steps), s.loss, s.lr, s.grad_norm,
                   s.seconds);
  };
}

}  // namespace

int cmd_train(const Args& args) {
  po::options_description opts("train options");
  opts.add_options()("out", po::value<std::string>(), "output model folder")(
      "size", po::value<std::string>()->default_value("small"), "preset: tiny | small | medium")(
      "config", po::value<std::string>(), "YAML training config (overrides the preset)");
  add_train_overrides(opts);
  po::variables_map vm;
  if (!parse("train", "--out DIR [--size small | --config FILE]", opts, {}, args, vm)) return 0;
  require(vm, {"out"});
  EmbeddedPreset p = vm.count("config") ? read_train_config(vm["config"].as<std::string>())
                                        : embedded_preset(vm["size"].as<std::string>());
  apply_overrides(vm, p.base);
  kernels::set_threads(vm["threads"].as<int>());
  const std::string out = vm["out"].as<std::string>();
  train_base(p, out, vm["overwrite"].as<bool>(), progress_logger("train", p.base.steps, vm["quiet"].as<bool>()));
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

int cmd_finetune(const Args& args) {
  po::options_description opts("finetune options");
  opts.add_options()("model", po::value<std::string>(), "base model folder")(
      "task", po::value<std::string>(), "skill (rev, sort, caps, dup, add, get) or text:FILE")(
      "out", po::value<std::string>(), "output model folder")("regime", po::value<std::string>()->default_value("sft"),
                                                              "sft (small deltas) | continued (large deltas)")(
      "size", po::value<std::string>()->default_value("small"), "preset whose regime defaults to use")(
      "replay", po::value<double>(), "share of each batch replaying the base's corpus (skills; sft default 0.125)");
  add_train_overrides(opts);
  po::variables_map vm;
  if (!parse("finetune", "--model BASE --task T --out DIR [--regime sft]", opts, {}, args, vm)) return 0;
  require(vm, {"model", "task", "out"});
  const EmbeddedPreset p = embedded_preset(vm["size"].as<std::string>());
  const std::string regime = vm["regime"].as<std::string>();
  if (regime != "sft" && regime != "continued")
    throw Error(ErrorCode::Usage, "", "--regime must be sft or continued, not \"" + regime + "\"");
  TrainOptions o = regime == "sft" ? p.sft : p.continued;
  apply_overrides(vm, o);
  if (vm.count("replay")) o.replay = vm["replay"].as<double>();
  if (!(o.replay >= 0 && o.replay <= 1)) throw Error(ErrorCode::Usage, "", "--replay must lie in [0, 1]");
  kernels::set_threads(vm["threads"].as<int>());
  const std::string task = vm["task"].as<std::string>(), out = vm["out"].as<std::string>();
  finetune(vm["model"].as<std::string>(), task, o, out, vm["overwrite"].as<bool>(),
           progress_logger("finetune " + task, o.steps, vm["quiet"].as<bool>()));
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

int cmd_generate(const Args& args) {
  po::options_description opts("generate options");
  opts.add_options()("model", po::value<std::string>(), "model folder")("prompt", po::value<std::string>(), "text")(
      "max-new", po::value<int64_t>()->default_value(100), "tokens to generate")(
      "threads", po::value<int>()->default_value(0), "threads (0: all cores)");
  po::variables_map vm;
  if (!parse("generate", "--model DIR --prompt TEXT [--max-new 100]", opts, {}, args, vm)) return 0;
  require(vm, {"model", "prompt"});
  kernels::set_threads(vm["threads"].as<int>());
  const std::string dir = vm["model"].as<std::string>();
  LlamaParams p = load_llama(dir);
  auto tok = load_tokenizer(dir, p.config().vocab);
  if (!tok) throw Error(ErrorCode::Usage, dir, "the model declares no tokenizer (deltakit_tokenizer.json)");
  const std::string prompt = vm["prompt"].as<std::string>();
  std::vector<int32_t> ids = {tok->bos()};
  for (int32_t id : tok->encode(prompt)) ids.push_back(id);
  auto r = generate_greedy(p.config(), p.view(), {ids}, vm["max-new"].as<int64_t>(), tok->eos());
  std::vector<int32_t> all = ids;
  all.insert(all.end(), r.tokens[0].begin(), r.tokens[0].end());
  std::printf("%s\n", tok->decode(all).c_str());
  return 0;
}

int cmd_tokenize(const Args& args) {
  po::options_description opts("tokenize options");
  opts.add_options()("model", po::value<std::string>(), "model folder (its tokenizer)")(
      "text", po::value<std::string>(), "text file")("out", po::value<std::string>(), "uint32 token file to write")(
      "overwrite", po::bool_switch(), "replace an existing --out");
  po::variables_map vm;
  if (!parse("tokenize", "--model DIR --text FILE --out TOKENS.bin", opts, {}, args, vm)) return 0;
  require(vm, {"model", "text", "out"});
  const std::string dir = vm["model"].as<std::string>(), text = vm["text"].as<std::string>();
  const std::string out = vm["out"].as<std::string>();
  const LlamaConfig c = read_llama_config(dir);
  auto tok = load_tokenizer(dir, c.vocab);
  if (!tok) throw Error(ErrorCode::Usage, dir, "the model declares no tokenizer (deltakit_tokenizer.json)");
  const std::string inputs[] = {text, dir};
  check_output_file_path(out, inputs, vm["overwrite"].as<bool>());
  std::vector<uint32_t> ids = {static_cast<uint32_t>(tok->bos())};  // as eval --text reads a text
  for (int32_t id : tok->encode(read_whole_file(text, "text"))) ids.push_back(static_cast<uint32_t>(id));
  write_file_atomically(out, {reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(uint32_t)});
  std::printf("wrote %s: %zu tokens\n", out.c_str(), ids.size());
  return 0;
}

int cmd_import_llama2c(const Args& args) {
  po::options_description opts("import-llama2c options");
  opts.add_options()("model", po::value<std::string>(), "llama2.c checkpoint (.bin)")(
      "tokenizer", po::value<std::string>(), "llama2.c tokenizer (.bin)")(
      "out", po::value<std::string>(), "output folder")("overwrite", po::bool_switch(), "replace an existing --out");
  po::positional_options_description pos;
  pos.add("model", 1);
  po::variables_map vm;
  if (!parse("import-llama2c", "MODEL.bin --tokenizer TOK.bin --out DIR", opts, pos, args, vm)) return 0;
  require(vm, {"model", "tokenizer", "out"});
  import_llama2c(vm["model"].as<std::string>(), vm["tokenizer"].as<std::string>(), vm["out"].as<std::string>(),
                 vm["overwrite"].as<bool>());
  std::printf("wrote %s\n", vm["out"].as<std::string>().c_str());
  return 0;
}

}  // namespace deltakit::cli
