#!/usr/bin/env python3
"""Compress and apply in memory that does not grow with the largest tensor: a pair whose one large
tensor is a 131072 × 2048 bf16 embedding (512 MiB per model, 1 GiB of fp32 δ) is compressed with
the recipes that take the fused pass (bitdelta, dare, quant, bitdelta + cherry per row and
model-wide) and each adapter applied again; each
run's peak RSS (the child's ru_maxrss) must stay far below the tensor: the inputs are read by
pread a window at a time, δ and δ̂ are never held whole, the output is written a block at a time,
and only the adapter's own stored form grows with the tensor.

The tensor's fp32 δ (1 GiB) is over --split-mb 256: bitdelta and quant split it into four row blocks that ranks and threads share (src/codec/split_pass.h). Their adapters must be the
bytes of an unsplit run (--split-mb 0), and with --mpirun the same again from two ranks, each
rank's peak RSS within the same limit (ru_maxrss of mpirun's waited-for children: the largest).
    bounded_memory.py --deltakit BIN [--mpirun MPIEXEC]
"""
import argparse
import filecmp
import json
import os
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

V, D = 131072, 2048
LIMITS_MB = {"bitdelta": 200, "dare:p=0.9": 320, "quant:bits=4": 640,  # compress
             # a cherry's fused pass holds the cherries (1%: positions and values; 218 MB measured)
             # and, for the model-wide cut, its search's kept entries (16 bytes each, about 3x the
             # cut's 1% at most) and the statistics between the passes (210 MB); the whole-δ path
             # held about 13 bytes per entry (3.5 GB)
             "bitdelta + cherry:frac=0.01": 240, "bitdelta + cherry:frac=0.01,scope=model": 340}
# apply holds a tensor's stored form: DARE's 32-bit positions and bf16 values (205 MB measured;
# 64-bit positions and fp32 values were 409), inside the 2 x block + 256 MB
APPLY_LIMITS_MB = {"bitdelta": 120, "dare:p=0.9": 260, "quant:bits=4": 300, "bitdelta + cherry:frac=0.01": 120,
                   "bitdelta + cherry:frac=0.01,scope=model": 120}


def write_safetensors(path, tensors):
    header, off = {}, 0
    for name, arr in tensors:
        header[name] = {"dtype": "BF16", "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        off += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, arr in tensors:
            f.write(arr.tobytes())


def bf16(x):
    return (x.view(np.uint32) >> 16).astype(np.uint16)


MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_odls_base_sigkill_timeout="0")


def peak_rss_mb(argv):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=MPI_ENV)
    _, status, usage = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"FAIL: {' '.join(argv)}\n{err}")
    return usage.ru_maxrss / 1024


def make_pair(work):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((V, D), dtype=np.float32) * 0.02
    for name, arr in (("base", base), ("ft", base + rng.standard_normal((V, D), dtype=np.float32) * 0.001)):
        os.makedirs(os.path.join(work, name))
        norm = np.full((64,), 1.0 if name == "base" else 1.01, np.float32)
        write_safetensors(os.path.join(work, name, "model.safetensors"),
                          [("model.embed_tokens.weight", bf16(arr)), ("model.norm.weight", bf16(norm))])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--mpirun")
    ap.add_argument("--make-pair", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.make_pair:
        return make_pair(a.make_pair)
    with tempfile.TemporaryDirectory() as work:
        # made in a child: a child of this process starts with this process's resident pages
        # counted in its ru_maxrss until it execs, so this one stays small
        subprocess.run([sys.executable, __file__, "--deltakit", a.deltakit, "--make-pair", work], check=True)
        tensor_mb = V * D * 2 / 2**20
        for recipe, limit in LIMITS_MB.items():
            out = os.path.join(work, "a.h5")
            mb = peak_rss_mb([a.deltakit, "compress", "--base", os.path.join(work, "base"), "--finetuned",
                              os.path.join(work, "ft"), "--recipe", recipe, "--out", out, "--overwrite",
                              "--quiet", "--threads", "1", "--split-mb", "256"])
            with h5py.File(out, "r") as f:
                codecs = {str(f["tensors"][k].attrs["name"]): str(f["tensors"][k].attrs["codec"]) for k in f["tensors"]}
            assert codecs["model.embed_tokens.weight"] == recipe.split(":")[0].replace(" ", ""), codecs
            print(f"{recipe}: peak RSS {mb:.0f} MB (limit {limit}; each input tensor {tensor_mb:.0f} MB, its fp32 "
                  f"delta {2 * tensor_mb:.0f} MB)")
            assert mb <= limit, f"{recipe}: peak RSS {mb:.0f} MB > {limit} MB"
            if recipe in ("bitdelta", "quant:bits=4"):  # split in row blocks: the unsplit bytes
                whole = os.path.join(work, "whole.h5")
                subprocess.run([a.deltakit, "compress", "--base", os.path.join(work, "base"), "--finetuned",
                                os.path.join(work, "ft"), "--recipe", recipe, "--out", whole, "--overwrite",
                                "--quiet", "--split-mb", "0"], check=True)
                # compared a block at a time: this process's resident pages count in its next child's RSS
                assert filecmp.cmp(whole, out, shallow=False), f"{recipe}: split != unsplit"
                if a.mpirun:
                    two = os.path.join(work, "two.h5")
                    mb2 = peak_rss_mb([a.mpirun, "--oversubscribe", "-n", "2", a.deltakit, "compress", "--base",
                                       os.path.join(work, "base"), "--finetuned", os.path.join(work, "ft"),
                                       "--recipe", recipe, "--out", two, "--overwrite", "--quiet", "--threads", "1",
                                       "--split-mb", "256"])
                    assert filecmp.cmp(two, out, shallow=False), f"{recipe}: 2 ranks != 1 rank"
                    print(f"  2 ranks: peak RSS {mb2:.0f} MB per rank (limit {limit}); split, 1 rank, 2 ranks and "
                          f"unsplit adapters identical")
                    assert mb2 <= limit, f"{recipe} on 2 ranks: peak RSS {mb2:.0f} MB > {limit} MB"
                else:
                    print("  split and unsplit adapters identical")
            applied = os.path.join(work, "applied")
            mb = peak_rss_mb([a.deltakit, "apply", "--base", os.path.join(work, "base"), "--adapter", out, "--out",
                              applied, "--overwrite", "--quiet"])
            with open(os.path.join(applied, "model.safetensors"), "rb") as f:
                header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
            begin, end = header["model.embed_tokens.weight"]["data_offsets"]
            assert end - begin == V * D * 2, header
            limit = APPLY_LIMITS_MB[recipe]
            print(f"  apply: peak RSS {mb:.0f} MB (limit {limit})")
            assert mb <= limit, f"apply {recipe}: peak RSS {mb:.0f} MB > {limit} MB"


if __name__ == "__main__":
    main()
