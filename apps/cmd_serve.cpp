// deltakit serve --base DIR [--adapter NAME=PATH.h5]... [--adapter-dir DIR] [--host H] [--port P]
#include "apps/cli_common.h"
#include "src/core/error.h"
#include "src/serve/http_server.h"

namespace deltakit::cli {

int cmd_serve(const Args& args) {
  po::options_description opts("serve options");
  opts.add_options()("base", po::value<std::string>(), "the base model folder (served as its folder's name)")(
      "adapter", po::value<std::vector<std::string>>()->composing(), "NAME=PATH.h5, an adapter to serve (repeatable)")(
      "adapter-dir", po::value<std::string>(), "serve every *.h5 in this folder, named by its file name")(
      "host", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on")(
      "port", po::value<int>()->default_value(8000), "port (0: any free one, printed)")(
      "max-batch", po::value<int64_t>()->default_value(32), "sequences decoded together in one step")(
      "max-resident", po::value<int64_t>()->default_value(0),
      "adapters held in memory at once; others load on first use, least recently used dropped (0: all)")(
      "threads", po::value<unsigned>()->default_value(0), "compute threads (0: all cores)")(
      "http-threads", po::value<int>()->default_value(128), "connections served at once");
  po::variables_map vm;
  if (!parse("serve", "--base DIR [--adapter NAME=PATH.h5]... [--port 8000]", opts, {}, args, vm)) return 0;
  require(vm, {"base"});
  ServeOptions o;
  o.base = vm["base"].as<std::string>();
  if (vm.count("adapter"))
    for (const std::string& a : vm["adapter"].as<std::vector<std::string>>()) {
      const size_t eq = a.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == a.size())
        throw Error(ErrorCode::Usage, "", "--adapter " + a + ": expected NAME=PATH");
      o.adapters.push_back({a.substr(0, eq), a.substr(eq + 1)});
    }
  if (vm.count("adapter-dir")) o.adapter_dir = vm["adapter-dir"].as<std::string>();
  o.host = vm["host"].as<std::string>();
  o.port = vm["port"].as<int>();
  o.max_batch = vm["max-batch"].as<int64_t>();
  o.max_resident = vm["max-resident"].as<int64_t>();
  o.threads = vm["threads"].as<unsigned>();
  o.http_threads = vm["http-threads"].as<int>();
  if (o.port < 0 || o.port > 65535) throw Error(ErrorCode::Usage, "", "--port must be in 0..65535");
  if (o.max_batch < 1 || o.max_batch > 4096) throw Error(ErrorCode::Usage, "", "--max-batch must be in 1..4096");
  if (o.max_resident < 0) throw Error(ErrorCode::Usage, "", "--max-resident must be 0 or more");
  if (o.http_threads < 1 || o.http_threads > 4096)
    throw Error(ErrorCode::Usage, "", "--http-threads must be in 1..4096");
  return run_serve(o);
}

}  // namespace deltakit::cli
