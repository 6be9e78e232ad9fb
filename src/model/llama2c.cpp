#include "src/model/llama2c.h"

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "src/core/atomic_output.h"
#include "src/core/error.h"
#include "src/core/mapped_file.h"
#include "src/core/whole_file.h"
#include "src/model/llama_params.h"

namespace deltakit {

Llama2cTokenizer::Llama2cTokenizer(const std::string& path, uint64_t model_vocab) {
  const std::string b = read_whole_file(path, "llama2.c tokenizer");
  size_t at = 0;
  auto take = [&](void* dst, size_t n, const char* what) {
    if (b.size() - at < n)
      throw Error(ErrorCode::FileTooSmall, path,
                  std::string("truncated at byte ") + std::to_string(at) + " while reading " + what);
    std::memcpy(dst, b.data() + at, n);
    at += n;
  };
  int32_t max_len = 0;
  take(&max_len, 4, "max_token_length");
  if (max_len <= 0 || max_len > 4096) throw Error(ErrorCode::InvalidShape, path, "max_token_length out of range");
  if (model_vocab > (1u << 22)) throw Error(ErrorCode::InvalidShape, path, "vocabulary too large");
  for (uint64_t i = 0; i < model_vocab; ++i) {
    float score = 0;
    int32_t len = 0;
    take(&score, 4, "a token score");
    take(&len, 4, "a token length");
    if (len < 0 || len > max_len)
      throw Error(ErrorCode::InvalidShape, path, "token " + std::to_string(i) + " has length " + std::to_string(len));
    std::string piece(static_cast<size_t>(len), '\0');
    take(piece.data(), static_cast<size_t>(len), "a token's bytes");
    pieces_.push_back(piece);
    scores_.push_back(score);
  }
  for (size_t i = 0; i < pieces_.size(); ++i) sorted_.push_back({pieces_[i], static_cast<int32_t>(i)});
  std::sort(sorted_.begin(), sorted_.end());
}

int32_t Llama2cTokenizer::lookup(const std::string& piece) const {
  auto it = std::lower_bound(sorted_.begin(), sorted_.end(), std::make_pair(piece, INT32_MIN));
  return it != sorted_.end() && it->first == piece ? it->second : -1;
}

int32_t Llama2cTokenizer::byte_token(unsigned char c) const {
  const int32_t id = lookup(std::string(1, static_cast<char>(c)));
  return id >= 0 ? id : (pieces_.size() > 258u ? c + 3 : -1);
}

std::vector<int32_t> Llama2cTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids;
  if (text.empty()) return ids;
  // sentencepiece's dummy prefix: text starts as if after a space
  const int32_t space = lookup(" ");
  if (space >= 0) ids.push_back(space);
  // BPE merges are quadratic in the length of what they run on. A merge can never span a cut
  // made just before a character that no multi-byte piece holds past its first byte (a space,
  // a newline in sentencepiece vocabularies), so cutting there gives the same tokens as merging
  // the whole text, in linear time for real text.
  auto safe_cut = [&](char c) {
    for (const auto& p : pieces_)
      if (p.size() > 1 && p.find(c, 1) != std::string::npos) return false;
    return true;
  };
  const bool cut_space = safe_cut(' '), cut_newline = safe_cut('\n');
  size_t segment_start = 0;  // the dummy prefix merges with the first word
  auto merge_segment = [&] {
    for (;;) {
      float best = -1e30f;
      int32_t best_id = -1;
      size_t best_at = 0;
      for (size_t i = segment_start; i + 1 < ids.size(); ++i) {
        const int32_t id = lookup(pieces_[ids[i]] + pieces_[ids[i + 1]]);
        if (id >= 0 && scores_[id] > best) best = scores_[id], best_id = id, best_at = i;
      }
      if (best_id < 0) break;
      ids[best_at] = best_id;
      ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
    }
    segment_start = ids.size();
  };
  for (size_t i = 0; i < text.size();) {
    if (i > 0 && ((cut_space && text[i] == ' ') || (cut_newline && text[i] == '\n'))) merge_segment();
    size_t n = 1;  // one UTF-8 code point
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0xC0) n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    n = std::min(n, text.size() - i);
    const int32_t id = lookup(text.substr(i, n));
    if (id >= 0) {
      ids.push_back(id);
    } else {
      for (size_t j = 0; j < n; ++j) ids.push_back(static_cast<unsigned char>(text[i + j]) + 3);  // byte fallback
    }
    i += n;
  }
  merge_segment();
  return ids;
}

std::string Llama2cTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  int32_t prev = -1;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) continue;
    if (id <= 2) {  // <unk>, <s>, </s>
      prev = id;
      continue;
    }
    std::string p = pieces_[id];
    if ((prev == 1 || (prev == -1 && s.empty())) && !p.empty() && p[0] == ' ') p.erase(0, 1);
    unsigned byte = 0;
    if (p.size() == 6 && std::sscanf(p.c_str(), "<0x%02X>", &byte) == 1) p = std::string(1, static_cast<char>(byte));
    s += p;
    prev = id;
  }
  return s;
}

std::string Llama2cTokenizer::descriptor_json() const {
  return "{\n  \"type\": \"llama2c\",\n  \"file\": \"tokenizer.bin\",\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n"
         "  \"vocab_size\": " +
         std::to_string(pieces_.size()) + "\n}\n";
}

void import_llama2c(const std::string& model_bin, const std::string& tokenizer_bin, const std::string& out_dir,
                    bool overwrite) {
  MappedFile f(model_bin);
  const uint64_t size = f.size();
  if (size < 28) throw Error(ErrorCode::FileTooSmall, model_bin, "shorter than the 28-byte llama2.c header");
  int32_t h[7];
  std::span<const uint8_t> all = f.bytes();
  std::memcpy(h, all.data(), 28);
  for (int i = 0; i < 7; ++i)
    if ((i == 5 ? (h[i] == 0) : (h[i] <= 0)) || std::abs(static_cast<int64_t>(h[i])) > (1 << 24))
      throw Error(ErrorCode::InvalidShape, model_bin, "header field " + std::to_string(i) + " is " + std::to_string(h[i]));
  LlamaConfig c;
  c.dim = h[0], c.hidden = h[1], c.layers = h[2], c.heads = h[3], c.kv_heads = h[4];
  c.vocab = static_cast<uint64_t>(std::abs(h[5])), c.max_seq = h[6];
  c.tie_embeddings = h[5] > 0;
  if (c.dim % c.heads) throw Error(ErrorCode::InvalidShape, model_bin, "dim is not a multiple of n_heads");
  c.head_dim = c.dim / c.heads;
  c.rope_theta = 10000.0, c.norm_eps = 1e-5, c.bos_id = 1, c.eos_id = 2, c.dtype = DType::F32;
  c.validate(model_bin);
  const uint64_t D = c.dim, F = c.hidden, L = c.layers, V = c.vocab, Q = c.q_dim(), KV = c.kv_dim(),
                 S = c.max_seq, hs = c.head_dim;
  const uint64_t floats = V * D + L * D + L * D * Q + 2 * L * D * KV + L * Q * D + L * D + 3 * L * D * F + D +
                          S * hs + (c.tie_embeddings ? 0 : V * D);
  if (size != 28 + 4 * floats)
    throw Error(ErrorCode::DataLengthMismatch, model_bin,
                "the header implies " + std::to_string(28 + 4 * floats) + " bytes, the file has " + std::to_string(size));
  LlamaParams p(c);
  const auto* src = reinterpret_cast<const uint8_t*>(all.data()) + 28;
  auto next = [&](uint64_t n) {
    std::vector<float> v(n);
    std::memcpy(v.data(), src, n * 4);
    src += n * 4;
    return v;
  };
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
