// Calibration sequences for importance estimation and scale distillation, named by a source:
//   corpus        lines of the embedded base corpus (byte-tokenized models), loss everywhere
//   skill:NAME    packed examples of an embedded skill, loss on the answers (as in its SFT)
//   tokens:FILE   random windows of a uint32 token file, loss everywhere
// Drawn from a stream of their own (kCalibrationStream), apart from training and evaluation data,
// and deterministic in (source, step).
#pragma once

#include <cstdint>
#include <string>

#include "src/model/trainer.h"

namespace deltakit {

constexpr uint64_t kCalibrationStream = 0xCA11B;

// Errors (deltakit::Error) name the file or the source and what is wrong.
BatchFn calibration_batches(const std::string& source, uint64_t vocab);

}  // namespace deltakit
