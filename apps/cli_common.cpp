#include "apps/cli_common.h"

#include <cstdio>
#include <iostream>

#include "src/core/error.h"

namespace deltakit::cli {

bool parse(const std::string& command, const std::string& usage, po::options_description& opts,
           const po::positional_options_description& pos, const Args& args, po::variables_map& vm) {
  opts.add_options()("help,h", "show this help");
  po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  if (vm.count("help")) {
    std::cout << "usage: deltakit " << command << " " << usage << "\n\n" << opts << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

void require(const po::variables_map& vm, const std::vector<std::string>& names) {
  for (const auto& n : names)
    if (!vm.count(n)) throw Error(ErrorCode::Usage, "", "the option --" + n + " is required");
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.2f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string sci(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3e", v);
  return buf;
}

void warn(const std::string& command, const std::string& message) {
  if (world().is_root()) std::cerr << "deltakit " << command << ": warning: " << message << "\n";
}

namespace {
Comm* world_comm = nullptr;
}

Comm& world() {
  static SerialComm serial;
  return world_comm ? *world_comm : serial;
}

void set_world(Comm* comm) { world_comm = comm; }

void add_job_options(po::options_description& opts) {
  opts.add_options()("resume", po::bool_switch(), "continue a killed run from its journal (same arguments)")(
      "quiet", po::bool_switch(), "no progress display")("log-json", po::value<std::string>()->default_value(""),
                                                         "append progress as JSON lines to this file");
}

void add_device_option(po::options_description& opts) {
  opts.add_options()("device", po::value<std::string>()->default_value("cpu"),
                     "where to compute: cpu, or cuda (each rank the GPU of its node-local rank)");
}

gpu::Device device_option(const po::variables_map& vm) { return gpu::parse_device(vm["device"].as<std::string>()); }

ProgressOptions progress_options(const po::variables_map& vm) {
  return {vm["quiet"].as<bool>(), vm["log-json"].as<std::string>()};
}

}  // namespace deltakit::cli
