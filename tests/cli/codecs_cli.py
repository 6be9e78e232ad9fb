#!/usr/bin/env python3
"""Codecs end to end: for each recipe, compress a bf16 fixture (linear layers lossy, the rest raw)
and apply it; then check with outside tools that
  - h5py reads the whole tree and its attributes;
  - an independent decoder (adapter_decode.py: raw chunks + python-zstandard + numpy) rebuilds
    the BitDelta, DARE and quant deltas, and round_bf16(base + δ̂) equals deltakit's output;
  - raw tensors come back bit-exact; the stored rel_error matches the applied tensor;
  - the same inputs give a byte-identical adapter with 1 and 2 threads;
  - a YAML rules file routes tensors as written.
    codecs_cli.py --deltakit BIN
"""
import argparse
import os
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adapter_decode  # noqa: E402
from cli_run import run  # noqa: E402
from st_independent import read_checkpoint  # noqa: E402


def bf16_to_f32(raw):
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def check_recipe(a, work, base, ft, recipe, independent):
    adapter = os.path.join(work, "a.h5")
    out = os.path.join(work, "applied")
    run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--only",
        "*_proj.weight", "--out", adapter, "--overwrite")
    run(a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", out, "--overwrite")
    B, F, O = read_checkpoint(base), read_checkpoint(ft), read_checkpoint(out)
    with h5py.File(adapter, "r") as f:
        assert f.attrs["format"] == "deltakit-adapter" and f.attrs["format_version"] == 1
        names = list(f["tensors"])
        assert len(names) == len(F) == int(f.attrs["tensor_count"]), names
        for key in f["tensors"]:
            g = f["tensors"][key]
            name = g.attrs["name"]
            dtype, shape, braw = B[name]
            assert list(g.attrs["shape"]) == shape and g.attrs["dtype"] == dtype
            if not name.endswith("_proj.weight"):
                assert g.attrs["codec"] in ("raw", "unchanged"), (name, g.attrs["codec"])
                assert O[name][2] == F[name][2], f"{recipe}: raw tensor {name} not bit-exact"
                continue
            base_f = bf16_to_f32(braw)
            delta = bf16_to_f32(F[name][2]) - base_f
            got = bf16_to_f32(O[name][2]) - base_f
            rel = np.linalg.norm(got - delta) / np.linalg.norm(delta)
            # the stored error is of δ̂; the applied tensor adds bf16 rounding of base + δ̂
            assert abs(rel - g.attrs["rel_error"]) < 0.05 * g.attrs["rel_error"] + 0.01, (recipe, name, rel, g.attrs["rel_error"])
            if independent:
                want = f32_to_bf16_bits(base_f + adapter_decode.decode(g))
                have = np.frombuffer(O[name][2], np.uint16)
                assert np.array_equal(want, have), f"{recipe}: {name} differs from the independent decode " \
                    f"at {np.count_nonzero(want != have)} of {want.size} entries"
    size = os.path.getsize(adapter)
    print(f"ok {recipe:55s} {size:9d} bytes")
    return size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deltakit-codecs-") as work:
        base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
        run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", "tiny",
            "--max-shard-size", "200KB")
        for recipe, independent in [("bitdelta", True), ("bitdelta:scale=row", True),
                                    ("bitdelta:scale=group:64,levels=4", True), ("dare:p=0.9", True),
                                    ("dare:p=0.99", True), ("quant:bits=4", True), ("quant:bits=3,group=64", True),
                                    ("bitdelta + cherry:frac=0.01", False), ("lowrank:rank=8", False),
                                    ("topk:density=0.1 > quant:bits=8", False),
                                    ("dare:p=0.5 > bitdelta:scale=row + cherry:frac=0.005", False)]:
            check_recipe(a, work, base, ft, recipe, independent)

        # determinism across thread counts (threads > 1: workers taking whole tensors at once)
        for recipe in ("dare:p=0.9 > bitdelta:scale=row + cherry:frac=0.01", "raw", "quant:bits=4"):
            outs = []
            for t in ("1", "2", "3"):
                path = os.path.join(work, f"t{t}.h5")
                run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--threads", t,
                    "--out", path, "--overwrite")
                with open(path, "rb") as f:
                    outs.append(f.read())
            assert outs[0] == outs[1] == outs[2], f"{recipe}: adapters differ between 1, 2 and 3 threads"
            # apply's threads each take a shard (small shards: several per thread)
            folders = []
            for t in ("1", "2", "3"):
                out = os.path.join(work, f"applied{t}")
                run(a.deltakit, "apply", "--base", base, "--adapter", path, "--out", out, "--overwrite",
                    "--max-shard-size", "100KB", "--threads", t)
                folders.append({f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))})
            assert len(folders[0]) > 4, "expected several shards"
            assert folders[0] == folders[1] == folders[2], f"{recipe}: applied folders differ between thread counts"
        print("ok byte-identical adapters and applied checkpoints for 1, 2 and 3 threads")

        # a YAML rules file
        rules = os.path.join(work, "rules.yaml")
        with open(rules, "w") as f:
            f.write('default: raw\nrules:\n  - match: ["*q_proj*", "*k_proj*"]\n    recipe: "dare:p=0.9"\n'
                    '  - match: "*_proj.weight"\n    recipe: bitdelta\n')
        path = os.path.join(work, "rules.h5")
        run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--rules", rules, "--out", path)
        with h5py.File(path, "r") as f:
            for key in f["tensors"]:
                g = f["tensors"][key]
                name, codec = g.attrs["name"], g.attrs["codec"]
                want = "dare" if ("q_proj" in name or "k_proj" in name) else \
                    "bitdelta" if name.endswith("_proj.weight") else ("raw", "unchanged")
                assert codec in want if isinstance(want, tuple) else codec == want, (name, codec)
        print("ok rules file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
