#include "src/eval/embedded.h"

#include <filesystem>

#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/whole_file.h"
#include "src/eval/batches.h"
#include "src/eval/skills.h"
#include "src/model/tokenizer.h"

namespace deltakit {

EmbeddedPreset embedded_preset(const std::string& size) {
  EmbeddedPreset p;
  p.name = size;
  LlamaConfig& m = p.model;
  m.vocab = ByteTokenizer::kVocab, m.max_seq = 64, m.bos_id = ByteTokenizer::kBos, m.eos_id = ByteTokenizer::kEos;
  m.rope_theta = 10000.0, m.norm_eps = 1e-5;
  if (size == "tiny") {
    m.dim = 64, m.hidden = 176, m.layers = 2, m.heads = 4, m.kv_heads = 2, m.head_dim = 16;
    p.base.steps = 600;
  } else if (size == "small") {
    m.dim = 128, m.hidden = 352, m.layers = 4, m.heads = 4, m.kv_heads = 2, m.head_dim = 32;
    p.base.steps = 2400;
  } else if (size == "medium") {
    m.dim = 256, m.hidden = 688, m.layers = 6, m.heads = 8, m.kv_heads = 4, m.head_dim = 32, m.max_seq = 128;
    p.base.steps = 4000;
  } else {
    throw Error(ErrorCode::Usage, "", "unknown size \"" + size + "\" (tiny, small, medium)");
  }
  p.base.batch = 16, p.base.seq = static_cast<int64_t>(m.max_seq), p.base.lr = 3e-3, p.base.warmup = 40;
  p.base.seed = 1;
  // SFT: a sixth of the steps at a tenth of the learning rate, no weight decay pulling toward
  // zero. The base already does each skill in prose ("backwards abc is cba"); SFT teaches the
  // terse format, so mean|δ|/mean|θ| stays near 0.1 and held-out perplexity barely moves.
  p.sft = p.base;
  p.sft.steps = std::max<int64_t>(100, p.base.steps / 6), p.sft.lr = p.base.lr / 10, p.sft.warmup = 20;
  p.sft.weight_decay = 0.0, p.sft.seed = 2, p.sft.replay = 0.125;
  p.continued = p.base;
  p.continued.steps = p.base.steps, p.continued.lr = 3e-3, p.continued.seed = 3;
  return p;
}

void train_base(const EmbeddedPreset& p, const std::string& out_dir, bool overwrite, const Logger& log) {
  check_output_path(out_dir, {}, overwrite);
  LlamaParams params(p.model);
  params.init_random(p.base.seed);
  const double share = p.skill_share;
  const uint64_t seed = p.base.seed;
  train(params, p.base, [&](Batch& b, int64_t step) { corpus_batch(b, seed, step, share); }, log);
  ByteTokenizer tok;
  save_llama(params, out_dir, DType::F32, overwrite, {{kTokenizerFile, tok.descriptor_json()}});
}

void finetune(const std::string& base_dir, const std::string& task, const TrainOptions& o, const std::string& out_dir,
              bool overwrite, const Logger& log) {
  const std::string inputs[] = {base_dir};
  check_output_path(out_dir, inputs, overwrite);
  LlamaParams params = load_llama(base_dir);
  auto tok = load_tokenizer(base_dir, params.config().vocab);
  TrainOptions opt = o;
  opt.seq = std::min<int64_t>(opt.seq, static_cast<int64_t>(params.config().max_seq));
  std::vector<std::pair<std::string, std::string>> side;
  if (tok) side.push_back({kTokenizerFile, tok->descriptor_json()});
  if (task.rfind("text:", 0) == 0) {
    const std::string path = task.substr(5);
    if (!tok) throw Error(ErrorCode::Usage, base_dir, "fine-tuning on a text needs the model's tokenizer (deltakit_tokenizer.json)");
    const std::string text = read_whole_file(path, "fine-tuning text");
    std::vector<int32_t> stream = {tok->bos()};
    for (int32_t id : tok->encode(text)) stream.push_back(id);
    // hold out the last tenth for evaluation (deltakit eval --text FILE --split tail)
    stream.resize(stream.size() - stream.size() / 10);
    if (static_cast<int64_t>(stream.size()) < opt.seq + 1) throw Error(ErrorCode::Usage, path, "the text is too short");
    train(params, opt, [&](Batch& b, int64_t step) { stream_batch(b, stream, opt.seed, step); }, log);
  } else if (is_skill(task)) {
    if (!tok || tok->vocab() != ByteTokenizer::kVocab)
      throw Error(ErrorCode::Usage, base_dir, "skills are written in the byte tokenizer; this model does not use it");
    train(params, opt, [&](Batch& b, int64_t step) { skill_batch(b, task, opt.seed, step, opt.replay); }, log);
  } else {
    throw Error(ErrorCode::Usage, "", "unknown task \"" + task + "\" (rev, sort, caps, dup, add, get, or text:FILE)");
  }
  // copy the base's side files the tokenizer names (tokenizer.bin of an imported model)
  namespace fs = std::filesystem;
  for (const char* f : {"tokenizer.bin"}) {
    const fs::path src = fs::path(base_dir) / f;
    if (fs::exists(src)) side.push_back({f, read_whole_file(src.string(), "base's tokenizer file")});
  }
  save_llama(params, out_dir, params.config().dtype, overwrite, side);
}

}  // namespace deltakit
