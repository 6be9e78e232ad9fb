// What every fuzz target shares. A target is one call of the function the CLI calls, on bytes
// from the fuzzer. deltakit::Error is the one acceptable way to refuse them: any other exception
// would reach the user as "internal error" (exit 3) and is reported as a crash, like a signal or
// a sanitizer finding.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

#include "src/core/error.h"

namespace deltakit::fuzz {

// A folder of this process's own (so parallel fuzzing jobs never share files), made once.
inline const std::string& work_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("DELTAKIT_FUZZ_TMP");
    std::string d = std::string(base ? base : "/tmp") + "/deltakit-fuzz-" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// The input as a file named `name` in the work folder (readers that take a path read it back).
inline std::string as_file(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = work_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                                 static_cast<std::streamsize>(size));
  return path;
}

// Runs `f`; an Error is a clean refusal, anything else aborts with its type and message.
template <class F>
void expect_clean(F&& f) {
  try {
    f();
  } catch (const Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "deltakit fuzz: not a deltakit::Error: %s: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

}  // namespace deltakit::fuzz
