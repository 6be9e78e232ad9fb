#include "src/eval/calibration.h"

#include <memory>

#include "src/core/error.h"
#include "src/eval/batches.h"
#include "src/eval/skills.h"
#include "src/model/tokenizer.h"

namespace deltakit {

BatchFn calibration_batches(const std::string& source, uint64_t vocab) {
  if (source.rfind("tokens:", 0) == 0) {
    const std::string path = source.substr(7);
    auto stream = std::make_shared<std::vector<int32_t>>(read_token_file(path, vocab));
    return [stream, path](Batch& b, int64_t step) {
      if (static_cast<int64_t>(stream->size()) < b.T + 1)
        throw Error(ErrorCode::Usage, path,
                    "holds " + std::to_string(stream->size()) + " tokens, fewer than one calibration window");
      stream_batch(b, *stream, kCalibrationStream, step);
    };
  }
  const bool skill = source.rfind("skill:", 0) == 0;
  if (source != "corpus" && !skill)
    throw Error(ErrorCode::Usage, "",
                "unknown calibration source \"" + source + "\" (corpus, skill:NAME, tokens:FILE)");
  if (vocab != ByteTokenizer::kVocab)
    throw Error(ErrorCode::Usage, "",
                "calibration from " + source + " is byte tokens; this model's vocabulary differs");
  if (!skill) return [](Batch& b, int64_t step) { corpus_batch(b, kCalibrationStream, step, 0.0); };
  const std::string name = source.substr(6);
  if (!is_skill(name)) throw Error(ErrorCode::Usage, "", "unknown skill in \"" + source + "\"");
  return [name](Batch& b, int64_t step) { skill_batch(b, name, kCalibrationStream, step); };
}

}  // namespace deltakit
