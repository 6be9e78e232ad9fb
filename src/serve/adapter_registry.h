// The adapters a server knows by name: each resident (held as products, src/serve/served_model.h)
// or kept on disk and loaded on first use. With a limit on resident adapters the least recently
// used is dropped from memory (requests running on it keep it until they finish), as S-LoRA and
// vLLM's max_cpu_loras do.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "src/serve/served_model.h"

namespace deltakit {

class AdapterRegistry {
 public:
  AdapterRegistry(const ServedBase& base, int64_t max_resident) : base_(base), max_resident_(max_resident) {}
  // Registers NAME=PATH and loads it now (so a bad adapter is refused here, with the reason).
  // Error(Usage) if the name is taken.
  void add(const std::string& name, const std::string& path);
  bool remove(const std::string& name);  // false if unknown
  bool has(const std::string& name) const;
  // The tenant, loaded again if it was dropped; nullptr if the name is unknown.
  std::shared_ptr<const Tenant> get(const std::string& name);
  struct Info {
    std::string name, path;
    bool resident = false;
    uint64_t bytes = 0;
    std::map<std::string, std::pair<uint64_t, uint64_t>> held;
  };
  std::vector<Info> list() const;

 private:
  struct Entry {
    std::string path;
    std::shared_ptr<const Tenant> tenant;
    uint64_t last_use = 0;
  };
  void make_room(const std::string& keep);
  const ServedBase& base_;
  int64_t max_resident_;  // 0: no limit
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  uint64_t clock_ = 0;
};

}  // namespace deltakit
