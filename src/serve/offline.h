// Requests run through the serving stack in-process, without HTTP: one base, its adapters held
// compressed, all requests submitted at once so the scheduler batches them into the same steps.
// The demo ends with this — one completion per skill from one base holding every adapter.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace deltakit {

struct OfflineRequest {
  std::string model;   // the base's folder name or an adapter's name
  std::string prompt;  // text (the base must have a tokenizer)
  int64_t max_tokens = 16;
  std::vector<std::string> stop;
};

struct OfflineResult {
  std::string text;
  uint64_t adapter_bytes = 0;  // what the request's adapter holds in memory (0: the base)
};

// Greedy completions, in request order. Error naming the file on a bad model or adapter.
std::vector<OfflineResult> serve_offline(const std::string& base,
                                         const std::vector<std::pair<std::string, std::string>>& adapters,
                                         const std::vector<OfflineRequest>& requests, unsigned threads);

}  // namespace deltakit
