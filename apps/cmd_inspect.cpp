// deltakit inspect PATH [--json]: a checkpoint's tensors, or an adapter's per-tensor records.
#include <iostream>
#include <nlohmann/json.hpp>

#include "apps/cli_common.h"
#include "formats/adapter_h5.h"
#include "formats/checkpoint.h"

namespace deltakit::cli {

namespace {
using Json = nlohmann::ordered_json;

int inspect_checkpoint(const std::string& path, bool json) {
  Checkpoint ck(path);
  uint64_t total = 0, params = 0;
  Json rows = Json::array();
  for (const auto& name : ck.names()) {
    TensorView v = ck.view(name);
    total += v.bytes.size();
    params += v.numel();
    rows.push_back({{"name", name}, {"dtype", std::string(dtype_name(v.dtype))}, {"shape", v.shape},
                    {"bytes", v.bytes.size()}, {"shard", ck.shard_of(name)}});
  }
  if (json) {
    std::cout << Json{{"kind", "checkpoint"}, {"path", path}, {"shards", ck.shards().size()},
                      {"tensors", rows}, {"total_tensors", rows.size()}, {"total_params", params},
                      {"total_bytes", total}}.dump() << "\n";
    return 0;
  }
  std::printf("%-52s %-6s %-16s %12s  %s\n", "tensor", "dtype", "shape", "bytes", "shard");
  for (const auto& r : rows)
    std::printf("%-52s %-6s %-16s %12llu  %s\n", r["name"].get<std::string>().c_str(),
                r["dtype"].get<std::string>().c_str(), shape_string(r["shape"].get<std::vector<uint64_t>>()).c_str(),
                static_cast<unsigned long long>(r["bytes"].get<uint64_t>()), r["shard"].get<std::string>().c_str());
  std::printf("total: %zu tensors, %llu parameters, %s in %zu shard(s)\n", rows.size(),
              static_cast<unsigned long long>(params), human_bytes(static_cast<double>(total)).c_str(), ck.shards().size());
  return 0;
}

int inspect_adapter(const std::string& path, bool json) {
  AdapterReader ad(path);
  Json rows = Json::array();
  uint64_t stored = 0, bf16_delta = 0;
  for (const auto& name : ad.names()) {
    const Json& a = ad.attrs(name);
    uint64_t numel = 1;
    for (uint64_t d : ad.shape(name)) numel *= d;
    uint64_t bytes = ad.stored_bytes(name);
    stored += bytes;
    bf16_delta += 2 * numel;
    rows.push_back({{"name", name}, {"codec", a["codec"]}, {"recipe", a.value("recipe", "")}, {"dtype", a["dtype"]},
                    {"shape", a["shape"]}, {"stored_bytes", bytes},
                    {"ratio_vs_bf16_delta", bytes ? 2.0 * numel / bytes : 0.0}, {"rel_error", a.value("rel_error", 0.0)}});
  }
  const double ratio = ad.file_size() ? double(bf16_delta) / ad.file_size() : 0.0;
  if (json) {
    std::cout << Json{{"kind", "adapter"}, {"path", path}, {"format_version", ad.root()["format_version"]},
                      {"recipe", ad.root().value("recipe", "")}, {"seed", ad.root().value("seed", 0)},
                      {"tensors", rows}, {"stored_bytes", stored}, {"file_bytes", ad.file_size()},
                      {"bf16_delta_bytes", bf16_delta}, {"ratio_vs_bf16_delta", ratio}}.dump()
              << "\n";
    return 0;
  }
  std::printf("%-48s %-18s %-5s %12s %9s %9s\n", "tensor", "codec", "dtype", "stored", "ratio", "rel_err");
  for (const auto& r : rows)
    std::printf("%-48s %-18s %-5s %12llu %9.2f %9.2e\n", r["name"].get<std::string>().c_str(),
                r["codec"].get<std::string>().c_str(), r["dtype"].get<std::string>().c_str(),
                static_cast<unsigned long long>(r["stored_bytes"].get<uint64_t>()), r["ratio_vs_bf16_delta"].get<double>(),
                r["rel_error"].get<double>());
  std::printf("recipe: %s\n", ad.root().value("recipe", "").c_str());
  std::printf("total: %zu tensors, datasets %s, file %s, %.2fx smaller than the bf16 delta (%s)\n", rows.size(),
              human_bytes(static_cast<double>(stored)).c_str(), human_bytes(static_cast<double>(ad.file_size())).c_str(),
              ratio, human_bytes(static_cast<double>(bf16_delta)).c_str());
  return 0;
}
}  // namespace

int cmd_inspect(const Args& args) {
  po::options_description opts("inspect options");
  opts.add_options()("path", po::value<std::string>(), "checkpoint folder, .safetensors file or adapter")(
      "json", po::bool_switch(), "print one JSON object");
  po::positional_options_description pos;
  pos.add("path", 1);
  po::variables_map vm;
  if (!parse("inspect", "PATH [--json]", opts, pos, args, vm)) return 0;
  require(vm, {"path"});
  const std::string path = vm["path"].as<std::string>();
  bool json = vm["json"].as<bool>();
  return is_adapter_file(path) ? inspect_adapter(path, json) : inspect_checkpoint(path, json);
}

}  // namespace deltakit::cli
