#include "src/model/llama2c_import.h"

#include <algorithm>

#include "formats/llama2c.h"
#include "src/core/whole_file.h"
#include "src/model/llama2c_tokenizer.h"
#include "src/model/llama_params.h"

namespace deltakit {

void import_llama2c(const std::string& model_bin, const std::string& tokenizer_bin, const std::string& out_dir,
                    bool overwrite) {
  Llama2cModelFile f(model_bin);
  const Llama2cHeader& h = f.header();
  LlamaConfig c;
  c.dim = h.dim, c.hidden = h.hidden, c.layers = h.layers, c.heads = h.heads, c.kv_heads = h.kv_heads;
  c.vocab = h.vocab, c.max_seq = h.seq_len;
  c.tie_embeddings = h.tied_classifier;
  c.head_dim = h.head_size();
  c.rope_theta = 10000.0, c.norm_eps = 1e-5, c.bos_id = 1, c.eos_id = 2, c.dtype = DType::F32;
  c.validate(model_bin);
  const uint64_t D = c.dim, F = c.hidden, L = c.layers, V = c.vocab, Q = c.q_dim(), KV = c.kv_dim(),
                 S = c.max_seq, hs = c.head_dim;
  LlamaParams p(c);
  auto next = [&](uint64_t n) { return f.next(n); };
  auto put = [&](const std::string& name, const float* v) {
    const ParamSlice* s = p.find(name);
    std::copy(v, v + s->numel, p.data().begin() + static_cast<std::ptrdiff_t>(s->offset));
  };
  // llama2.c rotates interleaved pairs (2i, 2i+1); HF pairs (i, i + hd/2): reorder each head's rows
  auto permute_rows = [&](const float* w, uint64_t heads) {
    std::vector<float> out(heads * hs * D);
    for (uint64_t hh = 0; hh < heads; ++hh)
      for (uint64_t i = 0; i < hs / 2; ++i)
        for (uint64_t s2 = 0; s2 < 2; ++s2)
          std::copy_n(w + (hh * hs + 2 * i + s2) * D, D, out.begin() + static_cast<std::ptrdiff_t>((hh * hs + s2 * (hs / 2) + i) * D));
    return out;
  };
  auto lname = [](uint64_t l, const char* rest) { return "model.layers." + std::to_string(l) + "." + rest; };
  put("model.embed_tokens.weight", next(V * D).data());
  auto att_norm = next(L * D), wq = next(L * D * Q), wk = next(L * D * KV), wv = next(L * D * KV), wo = next(L * Q * D),
       ffn_norm = next(L * D), w1 = next(L * F * D), w2 = next(L * D * F), w3 = next(L * F * D), final_norm = next(D);
  next(S * hs);  // the RoPE tables: recomputed from rope_theta
  for (uint64_t l = 0; l < L; ++l) {
    put(lname(l, "input_layernorm.weight"), att_norm.data() + l * D);
    put(lname(l, "self_attn.q_proj.weight"), permute_rows(wq.data() + l * D * Q, c.heads).data());
    put(lname(l, "self_attn.k_proj.weight"), permute_rows(wk.data() + l * D * KV, c.kv_heads).data());
    put(lname(l, "self_attn.v_proj.weight"), wv.data() + l * D * KV);
    put(lname(l, "self_attn.o_proj.weight"), wo.data() + l * Q * D);
    put(lname(l, "post_attention_layernorm.weight"), ffn_norm.data() + l * D);
    put(lname(l, "mlp.gate_proj.weight"), w1.data() + l * F * D);
    put(lname(l, "mlp.down_proj.weight"), w2.data() + l * D * F);
    put(lname(l, "mlp.up_proj.weight"), w3.data() + l * F * D);
  }
  put("model.norm.weight", final_norm.data());
  if (!c.tie_embeddings) put("lm_head.weight", next(V * D).data());
  Llama2cTokenizer tok(tokenizer_bin, V);
  const std::string tok_bytes = read_whole_file(tokenizer_bin, "llama2.c tokenizer");
  save_llama(p, out_dir, DType::F32, overwrite, {{"tokenizer.bin", tok_bytes}, {kTokenizerFile, tok.descriptor_json()}});
}

}  // namespace deltakit
