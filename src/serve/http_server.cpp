#include "src/serve/http_server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>

#include "formats/json_strict.h"
#include "formats/peft_lora.h"
#include "src/core/error.h"
#include "src/serve/adapter_registry.h"
#include "src/serve/scheduler.h"

namespace deltakit {

namespace {

using Json = nlohmann::json;

int* signal_pipe() {
  static int fds[2] = {-1, -1};
  return fds;
}
using Clock = std::chrono::steady_clock;

// A client-facing error: HTTP status and OpenAI's error body.
struct HttpError {
  int status;
  std::string message, type;
};
[[noreturn]] void bad_request(const std::string& msg) { throw HttpError{400, msg, "invalid_request_error"}; }

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

void send_error(httplib::Response& res, const HttpError& e) {
  res.status = e.status;
  res.set_content(dump({{"error", {{"message", e.message}, {"type", e.type}, {"code", e.status}}}}),
                  "application/json");
}

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Json parse_body(const httplib::Request& req) {
  try {
    StrictJson j = parse_json_strict(req.body, "request body", {.max_depth = 16, .max_array_len = 1u << 20});
    if (!j.value.is_object()) bad_request("the request body must be a JSON object");
    if (j.duplicate_key) bad_request("the request body repeats the key \"" + *j.duplicate_key + "\"");
    return std::move(j.value);
  } catch (const Error& e) {
    bad_request(e.what());
  }
}

// Optional typed fields, each checked with its range.
double number(const Json& b, const char* key, double dflt, double lo, double hi) {
  if (!b.contains(key) || b[key].is_null()) return dflt;
  if (!b[key].is_number()) bad_request(std::string("'") + key + "' must be a number");
  const double v = b[key].get<double>();
  if (!(v >= lo && v <= hi))
    bad_request(std::string("'") + key + "' must be between " + Json(lo).dump() + " and " + Json(hi).dump());
  return v;
}

class Server {
 public:
  explicit Server(const ServeOptions& opt) : opt_(opt) {
    base_ = load_served_base(opt.base);
    registry_ = std::make_unique<AdapterRegistry>(*base_, opt.max_resident);
    for (const auto& [name, path] : opt.adapters) registry_->add(name, path);
    if (!opt.adapter_dir.empty()) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator(opt.adapter_dir))
        if (e.path().extension() == ".h5" || is_peft_lora_folder(e.path().string())) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) registry_->add(f.stem().string(), f.string());
    }
    SchedulerOptions so;
    so.max_batch = opt.max_batch;
    so.threads = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
    scheduler_ = std::make_unique<Scheduler>(*base_, so);
    seed_base_ = std::random_device{}();
    routes();
  }

  int serve() {
    // SO_REUSEADDR (a restart may bind while old connections linger) but not httplib's default
    // SO_REUSEPORT, with which a second server on the same port would silently share it
    http_.set_socket_options([this](int sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_fd_ = sock;
    });
    const int port = opt_.port == 0 ? http_.bind_to_any_port(opt_.host)
                                    : (http_.bind_to_port(opt_.host, opt_.port) ? opt_.port : -1);
    if (port < 0) throw Error(ErrorCode::Io, opt_.host + ":" + std::to_string(opt_.port), "cannot listen there");
    // httplib listens with a backlog of 5: connections beyond it while the pool is busy would be
    // dropped or reset; listening again on the bound socket raises it
    if (listen_fd_ >= 0) ::listen(listen_fd_, 1024);
    std::printf("deltakit serve: listening on http://%s:%d (base %s, %zu adapters)\n", opt_.host.c_str(), port,
                base_->name.c_str(), registry_->list().size());
    std::fflush(stdout);
    std::thread waiter([this] { wait_for_signal(); });
    http_.listen_after_bind();
    waiter.join();
    scheduler_->stop();
    return 0;
  }

 private:
  // SIGTERM/SIGINT (their handler writes a byte to a pipe, read here): stop taking requests, let
  // the running ones finish, then stop the listener.
  void wait_for_signal() {
    char c;
    while (read(signal_pipe()[0], &c, 1) < 0 && errno == EINTR) {
    }
    draining_ = true;
    while (!scheduler_->idle() || in_flight_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    http_.stop();
  }

  struct InFlight {
    std::atomic<int>& n;
    explicit InFlight(std::atomic<int>& c) : n(c) { ++n; }
    ~InFlight() { --n; }
  };

  void routes() {
    http_.new_task_queue = [n = opt_.http_threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    http_.set_payload_max_length(opt_.max_body);
    http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(res, {500, what, "internal_server_error"});
    });
    http_.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404)
        send_error(res, {404, "no route " + req.method + " " + req.path, "NotFoundError"});
      else if (res.status == 413)
        send_error(res, {413, "the request body is too large", "invalid_request_error"});
      else
        send_error(res, {res.status, "HTTP status " + std::to_string(res.status), "invalid_request_error"});
    });
    auto guarded = [this](auto fn) {
      return [this, fn](const httplib::Request& req, httplib::Response& res) {
        InFlight f(in_flight_);
        try {
          if (draining_) throw HttpError{503, "the server is shutting down", "service_unavailable"};
          (this->*fn)(req, res);
        } catch (const HttpError& e) {
          send_error(res, e);
        }
      };
    };
    http_.Get("/health",
              [](const httplib::Request&, httplib::Response& res) { res.set_content("{}", "application/json"); });
    http_.Get("/v1/models", guarded(&Server::models));
    http_.Get("/metrics", guarded(&Server::metrics));
    http_.Post("/v1/completions", guarded(&Server::completions));
    http_.Post("/v1/chat/completions", guarded(&Server::chat));
    http_.Post("/v1/load_lora_adapter", guarded(&Server::load_adapter));
    http_.Post("/v1/unload_lora_adapter", guarded(&Server::unload_adapter));
  }

  Json model_card(const std::string& id, const std::string& root, const Json& parent) const {
    return {{"id", id},
            {"object", "model"},
            {"created", started_},
            {"owned_by", "deltakit"},
            {"root", root},
            {"parent", parent},
            {"max_model_len", base_->config.max_seq}};
  }

  void models(const httplib::Request&, httplib::Response& res) {
    Json data = Json::array();
    data.push_back(model_card(base_->name, base_->path, nullptr));
    for (const auto& a : registry_->list()) {
      Json card = model_card(a.name, a.path, base_->name);
      card["resident"] = a.resident;
      card["resident_bytes"] = a.bytes;
      Json held = Json::object();
      for (const auto& [form, tb] : a.held) held[form] = {{"tensors", tb.first}, {"bytes", tb.second}};
      card["held"] = std::move(held);
      data.push_back(std::move(card));
    }
    res.set_content(dump({{"object", "list"}, {"data", data}}), "application/json");
  }

  void metrics(const httplib::Request&, httplib::Response& res) {
    const SchedulerMetrics m = scheduler_->metrics();
    std::string out;
    auto line = [&](const std::string& name, double v, const std::string& help) {
      out += "# HELP " + name + " " + help + "\n" + name + " " + std::to_string(v) + "\n";
    };
    line("deltakit_requests_total", double(m.requests), "completion requests accepted");
    line("deltakit_requests_finished_total", double(m.finished), "requests finished (stop, length or abort)");
    line("deltakit_requests_cancelled_total", double(m.cancelled), "requests whose client went away");
    line("deltakit_prompt_tokens_total", double(m.prompt_tokens), "prompt tokens admitted");
    line("deltakit_generation_tokens_total", double(m.generated_tokens), "tokens generated");
    line("deltakit_steps_total", double(m.steps), "decoding steps run");
    line("deltakit_batch_rows_mean", m.steps ? double(m.step_rows) / double(m.steps) : 0.0, "token rows per step");
    line("deltakit_batch_sequences_mean", m.steps ? double(m.step_sequences) / double(m.steps) : 0.0,
         "sequences per step (batch occupancy)");
    line("deltakit_requests_running", double(m.running), "sequences in the running batch");
    line("deltakit_requests_waiting", double(m.waiting), "requests waiting for a slot");
    line("deltakit_generation_tokens_per_second",
         m.busy_seconds > 0 ? double(m.generated_tokens) / m.busy_seconds : 0.0,
         "tokens generated per second of stepping");
    line("deltakit_base_bytes", double(base_->params.data().size() * sizeof(float)), "the base's fp32 weights");
    out += "# HELP deltakit_adapter_bytes bytes an adapter holds in memory (0: on disk until used)\n";
    for (const auto& a : registry_->list())
      out += "deltakit_adapter_bytes{adapter=\"" + a.name + "\"} " + std::to_string(a.bytes) + "\n";
    res.set_content(out, "text/plain; version=0.0.4");
  }

  void chat(const httplib::Request&, httplib::Response&) {
    bad_request("model '" + base_->name + "' has no chat template: use /v1/completions with a prompt");
  }

  void load_adapter(const httplib::Request& req, httplib::Response& res) {
    const Json b = parse_body(req);
    if (!b.contains("lora_name") || !b["lora_name"].is_string() || !b.contains("lora_path") ||
        !b["lora_path"].is_string())
      bad_request("give \"lora_name\" and \"lora_path\" as strings");
    const std::string name = b["lora_name"], path = b["lora_path"];
    if (name.empty()) bad_request("\"lora_name\" is empty");
    try {
      registry_->add(name, path);
    } catch (const Error& e) {
      bad_request(e.what());
    }
    res.set_content("Success: LoRA adapter '" + name + "' added successfully.", "text/plain");
  }

  void unload_adapter(const httplib::Request& req, httplib::Response& res) {
    const Json b = parse_body(req);
    if (!b.contains("lora_name") || !b["lora_name"].is_string()) bad_request("give \"lora_name\" as a string");
    const std::string name = b["lora_name"];
    if (!registry_->remove(name)) throw HttpError{404, "no adapter named '" + name + "' is served", "NotFoundError"};
    res.set_content("Success: LoRA adapter '" + name + "' removed successfully.", "text/plain");
  }

  // The request as the scheduler runs it, every field checked.
  std::shared_ptr<Request> make_request(const Json& b, std::string& model) {
    if (!b.contains("model") || !b["model"].is_string()) bad_request("'model' must be given as a string");
    model = b["model"];
    auto r = std::make_shared<Request>();
    if (model != base_->name) {
      try {
        r->tenant = registry_->get(model);
      } catch (const Error& e) {
        throw HttpError{500, "adapter '" + model + "' cannot be loaded: " + e.what(), "internal_server_error"};
      }
      if (!r->tenant) throw HttpError{404, "The model `" + model + "` does not exist.", "NotFoundError"};
    }
    if (!b.contains("prompt")) bad_request("'prompt' is missing");
    Json p = b["prompt"];
    if (p.is_array() && p.size() == 1 && (p[0].is_string() || p[0].is_array())) p = p[0];  // one prompt in a list
    const uint64_t V = base_->config.vocab;
    if (p.is_string()) {
      if (!base_->tokenizer) bad_request("model '" + base_->name + "' has no tokenizer: give the prompt as token ids");
      r->prompt.push_back(base_->tokenizer->bos());
      for (int32_t t : base_->tokenizer->encode(p.get<std::string>())) r->prompt.push_back(t);
    } else if (p.is_array() && !p.empty()) {
      for (const Json& t : p) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<uint64_t>() >= V)
          bad_request("'prompt' token ids must be integers in [0, " + std::to_string(V) + ")");
        r->prompt.push_back(t.get<int32_t>());
      }
    } else {
      bad_request("'prompt' must be a string or a non-empty list of token ids (one prompt per request)");
    }
    const int64_t ctx = static_cast<int64_t>(base_->config.max_seq), plen = static_cast<int64_t>(r->prompt.size());
    if (plen >= ctx)
      bad_request("This model's maximum context length is " + std::to_string(ctx) +
                  " tokens. However, your prompt has " + std::to_string(plen) + " tokens.");
    if (b.contains("max_tokens") && !b["max_tokens"].is_null()) {
      if (!b["max_tokens"].is_number_integer()) bad_request("'max_tokens' must be an integer");
      const int64_t mt = b["max_tokens"].get<int64_t>();
      if (mt <= 0) bad_request("'max_tokens' must be at least 1");
      if (plen + mt > ctx)
        bad_request("This model's maximum context length is " + std::to_string(ctx) +
                    " tokens. However, you requested " + std::to_string(plen + mt) + " tokens (" +
                    std::to_string(plen) + " in the prompt, " + std::to_string(mt) + " in the completion).");
      r->max_tokens = mt;
    } else {
      r->max_tokens = std::min<int64_t>(16, ctx - plen);
    }
    if (b.contains("n") && !(b["n"].is_number_integer() && b["n"].get<int64_t>() == 1))
      bad_request("only 'n': 1 is served");
    r->sampling.temperature = number(b, "temperature", 1.0, 0.0, 2.0);
    r->sampling.top_p = number(b, "top_p", 1.0, 0.0, 1.0);
    if (r->sampling.top_p <= 0) bad_request("'top_p' must be in (0, 1]");
    if (b.contains("seed") && !b["seed"].is_null()) {
      if (!b["seed"].is_number_integer()) bad_request("'seed' must be an integer");
      r->sampling.seed = static_cast<uint64_t>(b["seed"].get<int64_t>());
    } else {
      r->sampling.seed = seed_base_ + (++seed_counter_);
    }
    if (b.contains("stop") && !b["stop"].is_null()) {
      const Json& s = b["stop"];
      if (s.is_string())
        r->stop.push_back(s);
      else if (s.is_array() && s.size() <= 4 &&
               std::all_of(s.begin(), s.end(), [](const Json& x) { return x.is_string(); }))
        for (const Json& x : s) r->stop.push_back(x);
      else
        bad_request("'stop' must be a string or a list of at most 4 strings");
      if (!r->stop.empty() && !base_->tokenizer) bad_request("stop strings need a tokenizer, which this model lacks");
    }
    r->eos = base_->tokenizer ? base_->tokenizer->eos() : static_cast<int32_t>(base_->config.eos_id);
    return r;
  }

  Json usage(const Request& r) const {
    const uint64_t p = r.prompt.size(), c = r.tokens.size();
    return {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}};
  }

  void completions(const httplib::Request& req, httplib::Response& res) {
    const Json b = parse_body(req);
    std::string model;
    std::shared_ptr<Request> r = make_request(b, model);
    const bool stream = b.contains("stream") && b["stream"].is_boolean() && b["stream"].get<bool>();
    const bool stream_usage = stream && b.contains("stream_options") && b["stream_options"].is_object() &&
                              b["stream_options"].value("include_usage", false);
    const std::string id = "cmpl-" + std::to_string(++request_counter_);
    const int64_t created = unix_now();
    scheduler_->submit(r);
    if (!stream) {
      std::unique_lock<std::mutex> lock(r->mu);
      r->cv.wait(lock, [&] { return r->done; });
      if (r->finish_reason == "error")
        throw HttpError{500, "the request failed in the decoding step (out of memory?)", "internal_server_error"};
      Json choice = {{"index", 0},
                     {"text", r->text},
                     {"logprobs", nullptr},
                     {"finish_reason", r->finish_reason},
                     {"token_ids", r->tokens}};
      res.set_content(dump({{"id", id},
                            {"object", "text_completion"},
                            {"created", created},
                            {"model", model},
                            {"choices", Json::array({choice})},
                            {"usage", usage(*r)}}),
                      "application/json");
      return;
    }
    // server-sent events: a chunk per piece of new text, the finish reason, usage if asked, [DONE]
    struct Cursor {
      size_t text = 0, tokens = 0;
      bool finished = false;
    };
    auto cur = std::make_shared<Cursor>();
    auto chunk = [=](const std::string& text, const std::vector<int32_t>& ids, const Json& finish) {
      Json c = {{"index", 0}, {"text", text}, {"logprobs", nullptr}, {"finish_reason", finish}, {"token_ids", ids}};
      return "data: " +
             dump({{"id", id},
                   {"object", "text_completion"},
                   {"created", created},
                   {"model", model},
                   {"choices", Json::array({c})}}) +
             "\n\n";
    };
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, r, cur, chunk, id, created, model, stream_usage](size_t, httplib::DataSink& sink) {
          std::string out;
          {
            std::unique_lock<std::mutex> lock(r->mu);
            r->cv.wait_for(lock, std::chrono::milliseconds(100), [&] {
              return r->done || r->stable > cur->text || (!base_->tokenizer && r->tokens.size() > cur->tokens);
            });
            const size_t upto = r->done ? r->text.size() : r->stable;
            if (upto > cur->text || r->tokens.size() > cur->tokens) {
              std::vector<int32_t> ids(r->tokens.begin() + static_cast<std::ptrdiff_t>(cur->tokens), r->tokens.end());
              out += chunk(r->text.substr(cur->text, upto > cur->text ? upto - cur->text : 0), ids, nullptr);
              cur->text = std::max(cur->text, upto), cur->tokens = r->tokens.size();
            }
            if (r->done) {
              out += chunk("", {}, r->finish_reason);
              if (stream_usage)
                out += "data: " +
                       dump({{"id", id},
                             {"object", "text_completion"},
                             {"created", created},
                             {"model", model},
                             {"choices", Json::array()},
                             {"usage", usage(*r)}}) +
                       "\n\n";
              out += "data: [DONE]\n\n";
              cur->finished = true;
            }
          }
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            r->cancelled = true;
            return false;
          }
          if (!sink.is_writable()) {
            r->cancelled = true;
            return false;
          }
          if (cur->finished) sink.done();
          return true;
        },
        [r](bool success) {
          if (!success) r->cancelled = true;
        });
  }

  ServeOptions opt_;
  std::unique_ptr<ServedBase> base_;
  std::unique_ptr<AdapterRegistry> registry_;
  std::unique_ptr<Scheduler> scheduler_;
  httplib::Server http_;
  int listen_fd_ = -1;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  std::atomic<uint64_t> request_counter_{0}, seed_counter_{0};
  uint64_t seed_base_ = 0;
  int64_t started_ = unix_now();
};

}  // namespace

int run_serve(const ServeOptions& opt) {
  // A handler, not a blocked mask and sigwait: threads that libraries start before main (OpenBLAS's
  // pool) would take the signal with its default action. The handler only writes to a pipe.
  if (pipe(signal_pipe()) != 0) throw Error(ErrorCode::Io, "", "cannot create a pipe for signals");
  struct sigaction sa = {};
  sa.sa_handler = [](int) {
    const char c = 1;
    [[maybe_unused]] ssize_t n = write(signal_pipe()[1], &c, 1);
  };
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not the end of the server
  Server s(opt);
  return s.serve();
}

}  // namespace deltakit
