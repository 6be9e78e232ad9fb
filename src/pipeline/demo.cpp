#include "src/pipeline/demo.h"

#include <cstring>
#include <filesystem>

#include "formats/checkpoint.h"
#include "src/fixture/llama_fixture.h"
#include "src/pipeline/apply.h"
#include "src/pipeline/compress.h"
#include "src/pipeline/diff.h"

namespace fs = std::filesystem;

namespace deltakit {

std::vector<DemoRow> run_demo(const std::string& out, const std::string& size, bool overwrite) {
  fs::create_directories(out);
  std::vector<DemoRow> rows;
  struct Variant {
    const char* dtype_name;
    DType dtype;
    bool sharded;
  };
  for (Variant v : {Variant{"bf16", DType::BF16, false}, Variant{"bf16", DType::BF16, true},
                    Variant{"f16", DType::F16, false}, Variant{"f32", DType::F32, false}}) {
    DemoRow row;
    row.dtype = v.dtype_name;
    row.layout = v.sharded ? "sharded" : "single";
    const std::string tag = row.dtype + "-" + row.layout;
    const fs::path dir = fs::path(out) / tag;
    fs::create_directories(dir);
    FixtureOptions o = fixture_preset(size);
    o.dtype = v.dtype;
    const std::string base = (dir / "base").string(), ft = (dir / "finetuned").string();
    const std::string adapter = (dir / "raw.h5").string(), applied = (dir / "applied").string();
    const uint64_t shard = v.sharded ? 1'000'000 : 5'000'000'000ull;
    o.max_shard_bytes = v.sharded ? shard : 0;
    write_llama_fixture(o, base, ft, overwrite);

    DiffReport d = run_diff(base, ft);
    row.rel_delta = d.total.base_l2 > 0 ? d.total.l2 / d.total.base_l2 : 0;
    CompressOptions co;
    co.base = base, co.finetuned = ft, co.out = adapter, co.overwrite = overwrite;
    CompressReport c = run_compress(co);
    row.compress_s = c.seconds;
    row.adapter_bytes = c.adapter_bytes;
    ApplyOptions a;
    a.base = base, a.adapter = adapter, a.out = applied, a.overwrite = overwrite, a.max_shard_bytes = shard;
    row.apply_s = run_apply(a).seconds;

    Checkpoint want(ft), got(applied);
    for (const auto& name : want.names()) {
      TensorView w = want.view(name);
      const auto* g = got.find(name);
      ++row.tensors;
      row.finetune_bytes += w.bytes.size();
      if (!g || g->entry->nbytes() != w.bytes.size() ||
          std::memcmp(got.view(name).bytes.data(), w.bytes.data(), w.bytes.size()) != 0)
        ++row.mismatched_tensors;
    }
    rows.push_back(row);
  }
  return rows;
}

}  // namespace deltakit
