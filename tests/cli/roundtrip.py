#!/usr/bin/env python3
"""raw compress -> apply reproduces the fine-tune bit for bit, checked by an independent reader.

    roundtrip.py --deltakit BIN --dtype bf16|f16|f32 [--sharded]

Builds a fixture pair, runs diff, compress, inspect and apply, then reads the applied checkpoint
and the fine-tune with st_independent (python json + struct) and compares every tensor's bytes,
and checks the side files, the index and diff's statistics against numpy-free recomputation."""
import argparse
import json
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import run  # noqa: E402
from st_independent import read_checkpoint  # noqa: E402


def decode(dtype, raw):
    """Bytes -> list of floats, by the IEEE definitions (bf16 = top half of an f32)."""
    if dtype == "F32":
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if dtype == "F16":
        return list(struct.unpack(f"<{len(raw) // 2}e", raw))
    halves = struct.unpack(f"<{len(raw) // 2}H", raw)
    return list(struct.unpack(f"<{len(halves)}f", struct.pack(f"<{len(halves)}I", *[h << 16 for h in halves])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--sharded", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="deltakit-rt-")
    try:
        base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
        flags = ["--dtype", a.dtype, "--size", "tiny"] + (["--max-shard-size", "70KB"] if a.sharded else [])
        run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, *flags)
        if a.sharded:
            assert os.path.exists(os.path.join(ft, "model.safetensors.index.json")), "fixture not sharded"

        adapter = os.path.join(work, "ft.h5")
        run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", adapter)
        info = json.loads(run(a.deltakit, "inspect", adapter, "--json"))
        assert info["kind"] == "adapter" and info["recipe"] == "raw", info

        out = os.path.join(work, "applied")
        run(a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", out,
            *(["--max-shard-size", "70KB"] if a.sharded else []))
        want, got = read_checkpoint(ft), read_checkpoint(out)
        assert set(want) == set(got), "tensor sets differ"
        for name in want:
            assert want[name] == got[name], f"{name}: applied bytes differ from the fine-tune"
        for side in ("config.json", "generation_config.json"):
            with open(os.path.join(ft, side)) as f1, open(os.path.join(out, side)) as f2:
                assert f1.read() == f2.read(), side
        if a.sharded:
            with open(os.path.join(out, "model.safetensors.index.json")) as f:
                idx = json.load(f)
            assert set(idx["weight_map"]) == set(want)
            assert idx["metadata"]["total_size"] == sum(len(v[2]) for v in want.values())

        # diff's statistics against a direct recomputation on two tensors
        d = json.loads(run(a.deltakit, "diff", "--base", base, "--finetuned", ft, "--json"))
        rows = {r["name"]: r for r in d["tensors"]}
        baset = read_checkpoint(base)
        for name in ("model.norm.weight", "model.layers.0.self_attn.k_proj.weight"):
            dt = want[name][0]
            b, f = decode(dt, baset[name][2]), decode(dt, want[name][2])
            deltas = [y - x for x, y in zip(b, f)]
            l2 = sum(x * x for x in deltas) ** 0.5
            es = {"F32": 4, "F16": 2, "BF16": 2}[dt]
            raw_b, raw_f = baset[name][2], want[name][2]
            same = sum(raw_b[i:i + es] == raw_f[i:i + es] for i in range(0, len(raw_b), es))
            r = rows[name]
            assert abs(r["l2"] - l2) <= 1e-4 * l2 + 1e-12, (name, r["l2"], l2)
            assert abs(r["max_abs"] - max(abs(x) for x in deltas)) <= 1e-6, name
            assert abs(r["unchanged_share"] - same / len(deltas)) < 1e-12, name

        # alpha = 0 gives the base back exactly
        out0 = os.path.join(work, "alpha0")
        run(a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", out0, "--alpha", "0")
        got0 = read_checkpoint(out0)
        for name in baset:
            assert got0[name] == baset[name], f"{name}: alpha=0 is not the base"
        print(f"ok: raw round trip bit-exact for {a.dtype}{' sharded' if a.sharded else ''}, "
              f"{len(want)} tensors")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
