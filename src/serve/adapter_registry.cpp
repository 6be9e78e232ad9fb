#include "src/serve/adapter_registry.h"

#include "src/core/error.h"

namespace deltakit {

void AdapterRegistry::add(const std::string& name, const std::string& path) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (entries_.count(name) || name == base_.name)
      throw Error(ErrorCode::Usage, "", "an adapter named '" + name + "' is already served");
  }
  auto t = load_tenant(base_, name, path);  // outside the lock: loading takes a while
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.count(name)) throw Error(ErrorCode::Usage, "", "an adapter named '" + name + "' is already served");
  entries_[name] = {path, std::move(t), ++clock_};
  make_room(name);
}

bool AdapterRegistry::remove(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.erase(name) != 0;
}

bool AdapterRegistry::has(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.count(name) != 0;
}

std::shared_ptr<const Tenant> AdapterRegistry::get(const std::string& name) {
  std::string path;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return nullptr;
    it->second.last_use = ++clock_;
    if (it->second.tenant) return it->second.tenant;
    path = it->second.path;
  }
  auto t = load_tenant(base_, name, path);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return t;  // unloaded meanwhile: this request still runs on it
  if (!it->second.tenant) it->second.tenant = t;
  make_room(name);
  return it->second.tenant;
}

void AdapterRegistry::make_room(const std::string& keep) {
  if (max_resident_ <= 0) return;
  for (;;) {
    int64_t resident = 0;
    Entry* lru = nullptr;
    for (auto& [n, e] : entries_) {
      if (!e.tenant) continue;
      ++resident;
      if (n != keep && (!lru || e.last_use < lru->last_use)) lru = &e;
    }
    if (resident <= max_resident_ || !lru) return;
    lru->tenant.reset();
  }
}

std::vector<AdapterRegistry::Info> AdapterRegistry::list() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Info> out;
  for (const auto& [n, e] : entries_) {
    Info i{n, e.path, e.tenant != nullptr, 0, {}};
    if (e.tenant) i.bytes = e.tenant->bytes, i.held = e.tenant->held;
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace deltakit
