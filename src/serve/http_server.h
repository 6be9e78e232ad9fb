// `deltakit serve`: the OpenAI-compatible HTTP front (Debian's cpp-httplib) over the scheduler,
// following the conventions of vLLM's multi-LoRA server — /v1/models lists the base and each
// adapter (with "parent"), /v1/completions picks one by "model", /v1/load_lora_adapter and
// /v1/unload_lora_adapter add and drop adapters at run time, /health, /metrics. Errors come in
// OpenAI's shape {"error": {"message", "type", "code"}}. docs/serving.md has the details.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace deltakit {

struct ServeOptions {
  std::string base;
  std::vector<std::pair<std::string, std::string>> adapters;  // NAME=PATH
  std::string adapter_dir;  // every *.h5 and PEFT LoRA folder in it, named by its stem
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (the one taken is printed)
  int64_t max_batch = 32;
  int64_t max_resident = 0;  // 0: every adapter stays resident
  unsigned threads = 0;      // 0: all cores
  int http_threads = 128;
  uint64_t max_body = 4u << 20;
};

// Serves until SIGTERM or SIGINT, then stops taking requests, lets the running ones finish and
// returns 0. Prints "deltakit serve: listening on http://HOST:PORT" once it accepts connections.
int run_serve(const ServeOptions& opt);

}  // namespace deltakit
