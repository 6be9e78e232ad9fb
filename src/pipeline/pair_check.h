// Fail-fast checks between two checkpoints (base and fine-tune): same tensor names, shapes and
// dtypes, all from the headers, before any tensor byte is read.
#pragma once

#include "formats/checkpoint.h"

namespace deltakit {

// Throws Error(TensorSetMismatch | ShapeMismatch | DtypeMismatch) naming the first few offenders.
void check_same_tensors(const Checkpoint& base, const Checkpoint& other);

}  // namespace deltakit
