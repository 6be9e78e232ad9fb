// The merge steps a GPU takes over (`merge --device cuda`): the mix of the task vectors. The
// sparsifiers (TIES's trim, DARE's masks, …) stay on the CPU; the bytes are the CPU's.
#pragma once

#include <span>

#include "src/gpu/cuda_device.h"
#include "src/merge/methods.h"

namespace deltakit::gpu {

// combine_task_vectors (src/merge/methods.h) with the weighing and the mix on `dev` (a.models
// are left as they were); dev == nullptr: the CPU's, which weighs a.models in place.
void combine_on(CudaDevice* dev, const MergeMethod& m, TensorMergeArgs& a, std::span<float> out);

// The options of that mix for combine_entry.
CombineEntryOptions combine_entry_options(const MergeMethod& m, const TensorMergeArgs& a);

}  // namespace deltakit::gpu
