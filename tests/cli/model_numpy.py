#!/usr/bin/env python3
"""The engine's forward against an independent implementation: a tiny model trained by
`deltakit train`, its logits computed again here with numpy straight from the safetensors file
and Hugging Face's Llama semantics (rotate_half RoPE, repeat_kv for GQA, RMSNorm, SwiGLU), and
the mean next-token loss of `deltakit eval --tokens --json` compared with ours."""
import argparse, json, os, struct, subprocess, sys, tempfile

import numpy as np


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e["dtype"]
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + end], dtype="<f4").reshape(e["shape"]).astype(np.float64)
    return out


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def logits_of(W, cfg, ids, inputs=None):
    """Logits [T, vocab]; with a dict `inputs`, also each linear weight's input rows by weight name."""
    T = len(ids)
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    inv = theta ** (-np.arange(0, hd, 2) / hd)
    ang = np.outer(np.arange(T), inv)
    cos, sin = np.concatenate([np.cos(ang)] * 2, -1), np.concatenate([np.sin(ang)] * 2, -1)

    def rope(x):  # x [T, heads, hd]
        half = hd // 2
        rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
        return x * cos[:, None, :] + rot * sin[:, None, :]

    def lin(name, x):
        if inputs is not None:
            inputs[name] = x
        return x @ W[name].T

    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj.weight", h).reshape(T, H, hd)
        k = lin(p + "self_attn.k_proj.weight", h).reshape(T, KV, hd)
        v = lin(p + "self_attn.v_proj.weight", h).reshape(T, KV, hd)
        q, k = rope(q), rope(k)
        k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(T, H * hd)
        x = x + lin(p + "self_attn.o_proj.weight", o)
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        g, u = lin(p + "mlp.gate_proj.weight", h), lin(p + "mlp.up_proj.weight", h)
        x = x + lin(p + "mlp.down_proj.weight", g / (1 + np.exp(-g)) * u)
    x = rms(x, W["model.norm.weight"], eps)
    return lin("model.embed_tokens.weight" if cfg["tie_word_embeddings"] else "lm_head.weight", x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        model = os.path.join(work, "m")
        subprocess.run([a.deltakit, "train", "--size", "tiny", "--steps", "60", "--out", model, "--quiet"], check=True)
        cfg = json.load(open(os.path.join(model, "config.json")))
        assert cfg["model_type"] == "llama" and cfg["architectures"] == ["LlamaForCausalLM"], cfg
        assert cfg["num_key_value_heads"] < cfg["num_attention_heads"], "the test wants grouped-query attention"
        W = read_safetensors(os.path.join(model, "model.safetensors"))
        text = b"The shai kounr tral some doufs. A mai vel runs by the gou. add 12+34=046\nsay abc: abc\n" * 2
        ids = [256] + list(text)
        open(os.path.join(work, "t.u32"), "wb").write(np.array(ids, dtype="<u4").tobytes())
        p = subprocess.run([a.deltakit, "eval", "--model", model, "--tokens", os.path.join(work, "t.u32"), "--json"],
                           capture_output=True, text=True, check=True)
        got = json.loads(p.stdout.strip().splitlines()[-1])
        window = cfg["max_position_embeddings"]
        nll, count = 0.0, 0
        for s in range(0, len(ids) - 1, window):
            chunk = ids[s:s + window + 1]
            lg = logits_of(W, cfg, chunk[:-1])
            lg = lg - lg.max(-1, keepdims=True)
            logp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
            nll -= logp[np.arange(len(chunk) - 1), chunk[1:]].sum()
            count += len(chunk) - 1
        want = nll / count
        print(f"deltakit loss {got['loss']:.6f}, numpy {want:.6f}, tokens {got['tokens']} vs {count}")
        if got["tokens"] != count or abs(got["loss"] - want) > 1e-4 * max(1.0, want):
            sys.exit("FAIL: the engine's loss differs from the numpy reference")
        if abs(got["perplexity"] - np.exp(want)) > 1e-3 * np.exp(want):
            sys.exit("FAIL: perplexity is not exp(loss)")
        # a model that learned something: well under the uniform loss over 260 tokens
        if not want < np.log(260) - 1.0:
            sys.exit(f"FAIL: the trained model is no better than uniform ({want:.3f})")
        print("ok: the forward matches an independent numpy implementation")


if __name__ == "__main__":
    main()
