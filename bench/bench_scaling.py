#!/usr/bin/env python3
"""Strong scaling of `deltakit compress` and `apply` from 1 to N MPI ranks (one thread per rank),
beside a memcpy of the same bytes measured in this script, and the peak RSS of every rank next
to the model's size and its largest tensor. Inputs are in page cache (a warm-up run first).

    bench/bench_scaling.py --deltakit build/apps/deltakit [--size large] [--layers 8,16]
                           [--ranks 1,2] [--recipes "bitdelta,dare:p=0.9"] [--reps 2]

Prints a Markdown table per model size: wall seconds (best of reps, mpirun start-up included),
GB/s of fine-tune input, GB/s per rank, speed-up and efficiency against 1 rank, max RSS per rank.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time

import numpy as np

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def tensor_sizes(folder):
    sizes = []
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            with open(os.path.join(folder, f), "rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(n))
            sizes += [v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__"]
    return sizes


def memcpy_gbps(folder, reps=5):
    """numpy copy of the fine-tune's bytes, resident in memory: the bandwidth ceiling."""
    src = np.concatenate([np.fromfile(os.path.join(folder, f), np.uint8) for f in sorted(os.listdir(folder))
                          if f.endswith(".safetensors")])
    dst = np.empty_like(src)
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return src.size / best / 1e9


def timed(argv, reps, rss_of=None):
    """Best wall time of `reps` runs and that run's peak RSS per process in MB (from `rss_of()`,
    or /usr/bin/time's rss_kb= lines on stderr)."""
    best, rss = 1e9, []
    for _ in range(reps):
        t = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True, env=ENV)
        dt = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"FAIL: {' '.join(argv)}\n{p.stderr}")
        if dt < best:
            best, rss = dt, rss_of() if rss_of else [int(x) / 1024 for x in re.findall(r"rss_kb=(\d+)", p.stderr)]
    return best, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--size", default="large")
    ap.add_argument("--layers", default="8,16")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--recipes", default="bitdelta,dare:p=0.9")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    a = ap.parse_args()
    ranks = [int(r) for r in a.ranks.split(",")]
    dk = os.path.abspath(a.deltakit)
    with tempfile.TemporaryDirectory(dir=a.workdir) as work:
        for layers in a.layers.split(","):
            base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
            subprocess.run([dk, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", a.size,
                            "--layers", layers, "--max-shard-size", "200MB", "--overwrite"], check=True,
                           capture_output=True)
            sizes = tensor_sizes(ft)
            model = sum(sizes)
            mc = memcpy_gbps(ft)
            print(f"\n### {a.size} fixture, {layers} layers: {model / 1e6:.0f} MB bf16 per model, {len(sizes)} tensors, "
                  f"largest {max(sizes) / 1e6:.0f} MB (fp32 delta {2 * max(sizes) / 1e6:.0f} MB); "
                  f"memcpy of the fine-tune's bytes {mc:.2f} GB/s\n")
            print("| job | ranks | wall s | GB/s | GB/s per rank | vs memcpy | speed-up | efficiency | max RSS per rank MB |")
            print("|---|---|---|---|---|---|---|---|---|")
            for recipe in a.recipes.split(","):
                adapter = os.path.join(work, "a.h5")
                jobs = [(f"compress {recipe}", lambda n: ["compress", "--base", base, "--finetuned", ft, "--recipe",
                                                          recipe, "--out", adapter, "--overwrite"]),
                        (f"apply {recipe}", lambda n: ["apply", "--base", base, "--adapter", adapter, "--out",
                                                       os.path.join(work, "ckpt"), "--overwrite"])]
                for what, args in jobs:
                    t1 = None
                    for n in ranks:
                        argv = ["mpirun", "--oversubscribe", "-n", str(n), "/usr/bin/time", "-f", "rss_kb=%M", dk,
                                *args(n), "--threads", "1", "--quiet"] if what.startswith("compress") else \
                               ["mpirun", "--oversubscribe", "-n", str(n), "/usr/bin/time", "-f", "rss_kb=%M", dk,
                                *args(n), "--quiet", "--max-shard-size", "100MB"]
                        timed(argv, 1)  # warm-up: page cache, the output in place
                        t, rss = timed(argv, a.reps)
                        t1 = t1 or t
                        gbps = model / t / 1e9
                        print(f"| {what} | {n} | {t:.2f} | {gbps:.3f} | {gbps / n:.3f} | {gbps / mc:.3f} | "
                              f"{t1 / t:.2f} | {t1 / t / n:.2f} | {', '.join(f'{r:.0f}' for r in rss)} |")


if __name__ == "__main__":
    main()
