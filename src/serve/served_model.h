// What `deltakit serve` holds: one base model in fp32, loaded once, and any number of tenants —
// adapters kept in their compressed form. A tenant's linear maps are DeltaProducts
// (src/codec/delta_product.h), multiplied after the shared base GEMM; its norms and biases are
// held as effective vectors (base + δ, a few KB); embedding rows are decoded one token at a time
// from the embedding's product, and a tied lm_head multiplies by that same product.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/checkpoint.h"
#include "src/codec/delta_product.h"
#include "src/model/llama_params.h"
#include "src/model/tokenizer.h"

namespace deltakit {

struct ServedBase {
  std::string path, name;  // name: what /v1/models calls it (the folder's name)
  LlamaConfig config;
  LlamaParams params;
  ModelWeights w;
  std::unique_ptr<Tokenizer> tokenizer;    // null: prompts must be token ids
  std::unique_ptr<Checkpoint> checkpoint;  // mapped, for adapters' fingerprints and raw deltas
  std::vector<float> rope_cos, rope_sin;
};
std::unique_ptr<ServedBase> load_served_base(const std::string& dir);

struct TenantLayer {
  std::unique_ptr<DeltaProduct> q, k, v, o, gate, up, down;  // null: unchanged
  std::vector<float> attn_norm, mlp_norm, bq, bk, bv;        // effective (base + δ); empty: the base's
};

struct Tenant {
  std::string name, path;
  std::vector<TenantLayer> layers;
  std::unique_ptr<DeltaProduct> embed, lm_head;  // lm_head null and tied: embed's
  std::vector<float> norm;
  // what is held how: form ("signs", "codes", "dense", "norm", ...) -> {tensors, bytes}
  std::map<std::string, std::pair<uint64_t, uint64_t>> held;
  uint64_t bytes = 0;  // everything held for this tenant
};

// Opens ADAPTER.h5 against the base: the same checks apply makes (tensor set, dtypes, shapes,
// and base fingerprints: a mismatch is refused with apply's message), every tensor held as a
// product. Error naming the file on anything wrong.
std::shared_ptr<const Tenant> load_tenant(const ServedBase& base, const std::string& name, const std::string& path);

}  // namespace deltakit
