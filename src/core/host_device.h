// DK_HD marks a function that nvcc compiles for both the host and the GPU (src/gpu): the CPU
// codecs and the CUDA kernels then share one definition of the arithmetic whose bits must agree
// (bf16/fp16 rounding, the Philox stream). Under a plain C++ compiler it is nothing.
#pragma once

#if defined(__CUDACC__)
#define DK_HD __host__ __device__
#else
#define DK_HD
#endif
