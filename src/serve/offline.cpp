#include "src/serve/offline.h"

#include "src/core/error.h"
#include "src/serve/adapter_registry.h"
#include "src/serve/scheduler.h"

namespace deltakit {

std::vector<OfflineResult> serve_offline(const std::string& base_dir,
                                         const std::vector<std::pair<std::string, std::string>>& adapters,
                                         const std::vector<OfflineRequest>& requests, unsigned threads) {
  auto base = load_served_base(base_dir);
  if (!base->tokenizer) throw Error(ErrorCode::Usage, base_dir, "the model has no tokenizer for text prompts");
  AdapterRegistry registry(*base, 0);
  for (const auto& [name, path] : adapters) registry.add(name, path);
  SchedulerOptions so;
  so.max_batch = static_cast<int64_t>(std::max<size_t>(requests.size(), 1));
  so.threads = threads ? threads : 1;
  Scheduler scheduler(*base, so);
  std::vector<std::shared_ptr<Request>> running;
  std::vector<OfflineResult> out(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const OfflineRequest& q = requests[i];
    auto r = std::make_shared<Request>();
    if (q.model != base->name) {
      r->tenant = registry.get(q.model);
      if (!r->tenant) throw Error(ErrorCode::Usage, "", "no model named '" + q.model + "'");
      out[i].adapter_bytes = r->tenant->bytes;
    }
    r->prompt.push_back(base->tokenizer->bos());
    for (int32_t t : base->tokenizer->encode(q.prompt)) r->prompt.push_back(t);
    const int64_t room = static_cast<int64_t>(base->config.max_seq) - static_cast<int64_t>(r->prompt.size());
    if (room < 1) throw Error(ErrorCode::Usage, "", "a prompt longer than the model's context");
    r->max_tokens = std::min(q.max_tokens, room);
    r->sampling.temperature = 0;
    r->stop = q.stop;
    r->eos = base->tokenizer->eos();
    running.push_back(r);
  }
  for (auto& r : running) scheduler.submit(r);  // all at once: they share steps
  for (size_t i = 0; i < running.size(); ++i) {
    std::unique_lock<std::mutex> lock(running[i]->mu);
    running[i]->cv.wait(lock, [&] { return running[i]->done; });
    out[i].text = running[i]->text;
  }
  return out;
}

}  // namespace deltakit
