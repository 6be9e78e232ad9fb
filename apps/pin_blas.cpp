// Pins OpenBLAS's kernels to one instruction set, so that a model trained or evaluated by deltakit
// gives the same bits on every x86-64 machine with AVX2 + FMA. OpenBLAS picks its sgemm kernels
// by CPU when it loads (Zen on AMD Zen 2/3, Cooperlake on Zen 4, SkylakeX on Intel AVX-512, ...),
// and their rounding differs: the demo's rev fine-tune scored 100% with one and 80% with another.
//
// OpenBLAS reads OPENBLAS_CORETYPE in its own constructor, before main() and before the C library
// lets a program change its environment. So where the variable is unset, the executable's
// preinit_array (which runs first of all) starts the same program again with it set to Zen's
// set — AVX2 + FMA, the kernels every figure in docs/ was measured with. A user who sets
// OPENBLAS_CORETYPE keeps it; a machine without AVX2 + FMA, or without /proc, runs as it is.
#include <unistd.h>

#include <cstring>

namespace {

char pinned[] = "OPENBLAS_CORETYPE=Zen";
char* env_with_pin[4096];  // static: the C library cannot allocate yet

void pin_blas_kernels(int, char** argv, char** env) {
#if defined(__x86_64__)
  __builtin_cpu_init();  // the CPU model is filled in by a constructor that has not run yet
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
  size_t n = 0;
  for (; env[n]; ++n)
    if (std::strncmp(env[n], "OPENBLAS_CORETYPE=", 18) == 0) return;
  if (n + 2 > sizeof env_with_pin / sizeof *env_with_pin) return;
  for (size_t i = 0; i < n; ++i) env_with_pin[i] = env[i];
  env_with_pin[n] = pinned;
  env_with_pin[n + 1] = nullptr;
  execve("/proc/self/exe", argv, env_with_pin);  // returns only on failure: then run unpinned
#else
  (void)argv, (void)env;
#endif
}

}  // namespace

__attribute__((section(".preinit_array"), used)) static void (*const deltakit_pin_blas)(int, char**,
                                                                                         char**) = pin_blas_kernels;
