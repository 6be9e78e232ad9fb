#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/seed-* (committed; run again only to
change them): small valid inputs of every kind, made with python's struct/json and, for adapters,
by `deltakit compress` over a micro checkpoint pair written here.
   python3 tests/fuzz/make_seeds.py --deltakit build/apps/deltakit"""
import argparse
import json
import os
import struct
import subprocess
import tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--deltakit", required=True)
a = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] -> file bytes (8-byte aligned header)."""
    header, off, blob = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    h = json.dumps(header, separators=(",", ":"))
    h += " " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h.encode() + blob


def floats(n, scale=0.01, seed=1):
    x, out = seed, []
    for _ in range(n):
        x = (1103515245 * x + 12345) % 2**31
        out.append((x / 2**31 - 0.5) * scale)
    return out


def bf16(v):
    return b"".join(struct.pack("<f", x)[2:] for x in v)


# --- safetensors headers and a sharded index
put("safetensors_header", "two", safetensors([("a.weight", "BF16", [4, 4], bf16(floats(16))),
                                              ("b.bias", "F32", [4], struct.pack("<4f", *floats(4)))],
                                             {"format": "pt"}))
put("safetensors_header", "empty", safetensors([]))
put("checkpoint_index", "valid", json.dumps({"metadata": {"total_size": 32}, "weight_map": {
    "a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}))

# --- config.json, tokenizer declarations, token files
put("llama_config", "llama", json.dumps({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 32,
    "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
    "max_position_embeddings": 16, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": True,
    "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}, indent=2))
put("tokenizer_json", "bytes", json.dumps({"type": "bytes", "bos_token_id": 256, "eos_token_id": 257,
                                           "pad_token_id": 258, "vocab_size": 260}))
put("tokenizer_json", "llama2c", json.dumps({"type": "llama2c", "file": "tokenizer.bin", "bos_token_id": 1,
                                             "eos_token_id": 2, "vocab_size": 260}))
put("token_file", "ids", struct.pack("<8I", 1, 2, 3, 256, 257, 10, 0, 511))


def journal_part(attrs, parts):
    """A compress journal record (src/pipeline/journal_part.h); the checksum is left zero (the
    fuzz target also runs each input with it made to match)."""
    payload = b"".join(c for p in parts for c in p["data"])
    for p in parts:
        p["chunks"] = [len(c) for c in p.pop("data")]
    header = json.dumps({"name": "w", "attrs": attrs, "report": "{}", "base_fingerprint": 7, "parts": parts}).encode()
    return b"DKJPART1" + struct.pack("<3Q", len(header), len(payload), 0) + header + payload


put("journal_part", "bitdelta", journal_part(
    ["o", {"codec": ["s", "bitdelta"], "shape": ["a", [["u", 4], ["u", 8]]], "rel_error": ["f", 4598175219545276416],
           "offset": ["i", -1], "none": ["n"], "flag": ["b", True]}],
    [{"name": "bitdelta.signs", "kind": 0, "dims": [4, 1], "chunk": [2, 1], "encoding": "", "zstd_level": 1,
      "data": [b"\x28\xb5\x2f\xfd", b"\x01\x02"]},
     {"name": "bitdelta.scale", "kind": 1, "dims": [1], "chunk": [1], "encoding": "bfloat16", "zstd_level": 1,
      "data": [b"\x80\x3f\x00\x00"]},
     {"name": "x", "kind": 4, "dims": [3], "chunk": [3], "encoding": "", "zstd_level": 1, "data": []}]))

# --- recipes, rules, merge configs
recipes = ["raw", "dare:p=0.5", "topk:density=0.3", "bitdelta:scale=row", "bitdelta:levels=4",
           "quant:bits=3,group=16", "lowrank:rank=2", "dare:p=0.5 > quant:bits=4",
           "bitdelta + cherry:frac=0.1", "topk:density=0.2,scope=model",
           "dare:p=0.9,rescale=none,seed=3 > bitdelta:scale=group:8 + cherry:frac=0.05,per=tensor"]
for i, r in enumerate(recipes):
    put("recipe", str(i), r)
put("rules", "yaml", 'default: raw\nrules:\n  - match: ["*embed_tokens*", "lm_head.weight", "*norm*"]\n'
    '    recipe: raw\n  - match: "*_proj.weight"\n    recipe: "bitdelta:scale=row + cherry:frac=0.005"\n')
put("merge_config", "dare_ties", "merge_method: dare_ties\nbase_model: base\nmodels:\n  - model: ft-caps\n"
    "    parameters: {weight: 1.0, density: 0.5}\n  - model: dup.h5\n    parameters:\n"
    "      weight: [0.5, 1.0]\n      density: [{filter: mlp, value: 0.3}, {value: 0.6}]\n"
    "parameters: {normalize: false, lambda: 1.0}\ndtype: bfloat16\nseed: 1\nrescale_norm: l1\n")
put("merge_config", "slerp", "merge_method: slerp\nbase_model: a\nmodels:\n  - model: b\n"
    "parameters:\n  t: [0.0, 0.5, 1.0]\ndtype: float32\n")

# --- importance files: fisher [8, 8], act [8]
put("importance", "fisher", safetensors([("w", "F32", [8, 8], struct.pack("<64f", *[abs(x) for x in floats(64)]))],
                                        {"kind": "fisher"}))
put("importance", "act", safetensors([("w", "F32", [8], struct.pack("<8f", *[abs(x) for x in floats(8)]))],
                                     {"kind": "act"}))

# --- llama2.c: a micro model (dim 8, hidden 16, 1 layer, 2 heads, vocab 16, context 4) and a tokenizer
dim, hidden, layers, heads, kv, vocab, seq = 8, 16, 1, 2, 2, 16, 4
hs = dim // heads
n = (vocab * dim + layers * dim + layers * dim * dim + 2 * layers * dim * kv * hs + layers * dim * dim
     + layers * dim + 3 * layers * dim * hidden + dim + seq * hs)
put("llama2c_model", "micro", struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq)
    + struct.pack("<%df" % n, *floats(n)))
pieces = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + [" ", "on", "ce", " t", "im"]
tok = struct.pack("<i", 6) + b"".join(struct.pack("<fi", -float(i), len(p)) + p.encode()
                                        for i, p in enumerate(pieces))
put("llama2c_tokenizer", "micro", struct.pack("<H", len(pieces) - 1) + tok)

# --- adapters: a micro base/fine-tune pair compressed by deltakit with each recipe
with tempfile.TemporaryDirectory() as tmp:
    for which, scale in (("base", 0.0), ("ft", 1.0)):
        os.makedirs(os.path.join(tmp, which))
        w = floats(8 * 16, 0.1, 7)
        d = floats(8 * 16, 0.01, 9)
        up = [x + scale * y for x, y in zip(w, d)]
        norm = [1.0 + scale * 0.01 * i for i in range(16)]
        with open(os.path.join(tmp, which, "model.safetensors"), "wb") as f:
            f.write(safetensors([("model.layers.0.mlp.up_proj.weight", "BF16", [8, 16], bf16(up)),
                                 ("model.norm.weight", "F32", [16], struct.pack("<16f", *norm)),
                                 ("model.layers.0.mlp.gate_proj.weight", "BF16", [8, 16], bf16(w))]))
    for i, r in enumerate(recipes[:9]):
        out = os.path.join(tmp, "a%d.h5" % i)
        subprocess.run([a.deltakit, "compress", "--base", os.path.join(tmp, "base"), "--finetuned",
                        os.path.join(tmp, "ft"), "--recipe", r, "--out", out, "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        put("adapter", str(i), open(out, "rb").read())
print("seeds written under", os.path.join(here, "corpus"))
