#!/usr/bin/env python3
"""How close `compress` and `apply` run to the hardware: each job's time beside the ceiling of
reading its input files once from page cache (a pread loop over them, in this script), and, for
jobs whose output is about as large as the input, writing the output's bytes once (write + fsync,
in this script, through the page cache and with O_DIRECT: the faster). Also the peer a user
would otherwise run: the same operation tensor by tensor in PyTorch on CPU (read, subtract, sign
or drop, write: mergekit's way), on the same files, when torch is importable (Debian's
python3-torch).

    bench/bench_stream.py --deltakit build/apps/deltakit [--size large] [--layers 16]
                          [--base B --finetuned F | --embedding 262144x2048] [--ranks p,1,2,1x2] [--reps 2]
                          [--compress-args "--split-mb 0"]

--embedding VxD makes a pair that is one V x D bf16 embedding (and a norm), the shape whose
one tensor a rank would otherwise hold whole; --compress-args is appended to every compress.

Prints one Markdown table: seconds (best of reps after a warm-up, mpirun's start included), GB/s
of input read (compress: base + fine-tune; apply: base + adapter), the ratio to the ceiling, the
efficiency of 2 ranks, and each rank's peak RSS. `--ranks` lists the runs: N is N ranks of one
thread each, NxT N ranks of T threads (1x2: one process on both cores, what a user gets without
mpirun's -n), and p one process of one thread started without mpirun (not bound to a core, so
its I/O threads — the stitch, the writers — may run beside the encoder on another core; under
mpirun -n 1 they share the rank's one core).
"""
import argparse
import json
import mmap
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_scaling import ENV, timed  # noqa: E402


def files_of(folder):
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".safetensors")]


def size_of(paths):
    return sum(os.path.getsize(p) for p in paths)


def read_ceiling(paths, reps=3):
    """pread the files once into one reused buffer: the cost of getting the bytes at all."""
    buf = bytearray(256 << 10)  # like cat: a buffer that stays in cache
    view = memoryview(buf)
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            while os.readv(fd, [view]) > 0:
                pass
            os.close(fd)
        best = min(best, time.perf_counter() - t)
    return best


def write_ceilings(nbytes, folder, reps=3):
    """write nbytes once and fsync, through the page cache ("buffered") and around it ("direct",
    O_DIRECT from page-aligned memory in whole 4 KiB blocks, the file cut back to nbytes; left out
    where the file system refuses it): the cost of putting an output of that size on disk."""
    chunk = 16 << 20
    buf = mmap.mmap(-1, chunk)  # page-aligned, as O_DIRECT needs
    buf.write(b"\1" * chunk)
    path = os.path.join(folder, "ceiling.bin")
    out = {}
    for how, flags in (("buffered", 0), ("direct", getattr(os, "O_DIRECT", 0))):
        if how == "direct" and not flags:
            continue
        best = 1e9
        try:
            for _ in range(reps):
                t = time.perf_counter()
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | flags, 0o644)
                try:
                    left = nbytes
                    while left > 0:
                        n = min(left, chunk)
                        os.write(fd, memoryview(buf)[:(n + 4095) // 4096 * 4096 if flags else n])
                        left -= n
                    if flags:
                        os.ftruncate(fd, nbytes)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                best = min(best, time.perf_counter() - t)
                os.remove(path)
        except OSError:  # EINVAL: no O_DIRECT here
            if os.path.exists(path):
                os.remove(path)
            continue
        out[how] = best
    return out


def write_ceiling(nbytes, folder, reps=3):
    """the faster way of writing nbytes once (write_ceilings)"""
    return min(write_ceilings(nbytes, folder, reps).values())


# --- the PyTorch peer: one tensor at a time, as mergekit and BitDelta's scripts do ----------------
def read_header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)), 8 + n


def peer_compress_bitdelta(base, ft, out):
    import torch
    dt = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
    parts = {}
    for bp, fp in zip(files_of(base), files_of(ft)):
        bh, bo = read_header(bp)
        fh, fo = read_header(fp)
        with open(bp, "rb") as bf, open(fp, "rb") as ff:
            for name, e in fh.items():
                if name == "__metadata__":
                    continue
                be = bh[name]
                bf.seek(bo + be["data_offsets"][0])
                ff.seek(fo + e["data_offsets"][0])
                nb = e["data_offsets"][1] - e["data_offsets"][0]
                b = torch.frombuffer(bytearray(bf.read(nb)), dtype=dt[e["dtype"]]).float()
                f = torch.frombuffer(bytearray(ff.read(nb)), dtype=dt[e["dtype"]]).float()
                d = f - b
                scale = d.abs().mean()
                signs = np.packbits((d >= 0).numpy(), bitorder="little")
                parts[name] = (signs, scale.item())
    with open(out, "wb") as f:
        for name, (signs, scale) in parts.items():
            f.write(np.float32(scale).tobytes())
            f.write(signs.tobytes())
        f.flush()
        os.fsync(f.fileno())


def embedding_pair(work, shape):
    """base and fine-tune folders of one V x D bf16 embedding (δ ~ N(0, 0.001²)) and a norm, written
    a slab of rows at a time"""
    V, D = (int(x) for x in shape.split("x"))
    rng = np.random.default_rng(0)
    folders = []
    for name in ("base", "ft"):
        folder = os.path.join(work, name)
        os.makedirs(folder)
        header = {"model.embed_tokens.weight": {"dtype": "BF16", "shape": [V, D], "data_offsets": [0, V * D * 2]},
                  "model.norm.weight": {"dtype": "BF16", "shape": [D], "data_offsets": [V * D * 2, V * D * 2 + D * 2]}}
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(len(h).to_bytes(8, "little") + h)
            for r0 in range(0, V, 8192):
                rows = min(8192, V - r0)
                x = np.random.default_rng(r0).standard_normal((rows, D), dtype=np.float32) * 0.02
                if name == "ft":
                    x += rng.standard_normal((rows, D), dtype=np.float32) * 0.001
                f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())
            f.write(np.full(D, 0x3f80 if name == "base" else 0x3f81, np.uint16).tobytes())
        folders.append(folder)
    return folders


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--size", default="large")
    ap.add_argument("--layers", default="16")
    ap.add_argument("--base")
    ap.add_argument("--finetuned")
    ap.add_argument("--embedding")
    ap.add_argument("--compress-args", default="")
    ap.add_argument("--ranks", default="p,1,2,1x2")
    ap.add_argument("--recipes", default="bitdelta,dare:p=0.9,quant:bits=4,raw")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    a = ap.parse_args()
    dk = os.path.abspath(a.deltakit)
    # (ranks, threads); p: (0, 1), one process without mpirun
    runs = [(0, 1) if r == "p" else tuple(int(x) for x in (r.split("x") + ["1"])[:2]) for r in a.ranks.split(",")]
    with tempfile.TemporaryDirectory(dir=a.workdir) as work:
        base, ft = a.base, a.finetuned
        if a.embedding:
            base, ft = embedding_pair(work, a.embedding)
        elif not base:
            base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
            subprocess.run([dk, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", a.size, "--layers",
                            a.layers, "--max-shard-size", "200MB", "--overwrite"], check=True, capture_output=True)
        inputs = files_of(base) + files_of(ft)
        in_bytes, model_bytes = size_of(inputs), size_of(files_of(ft))
        t_read = read_ceiling(inputs)
        print(f"\ninputs: base + fine-tune {in_bytes / 1e9:.2f} GB; read ceiling {t_read:.3f} s "
              f"({in_bytes / t_read / 1e9:.2f} GB/s, pread from page cache in this script)")
        writes = write_ceilings(model_bytes, work)
        print(f"writing {model_bytes / 1e9:.2f} GB once + fsync: " +
              ", ".join(f"{how} {t:.3f} s" for how, t in writes.items()) +
              " (a job's write ceiling is the faster)\n")
        print("| job | ranks | s | GB/s read | ceiling s | vs ceiling | efficiency | peak RSS per rank MB |")
        print("|---|---|---|---|---|---|---|---|")

        def row(what, argv_of, ceiling, read_bytes=in_bytes):
            t1 = None
            for n, threads in runs:
                # each rank bound to its own `threads` cores (mpirun binds a rank to one core by default)
                bind = ["--map-by", f"slot:PE={threads}"] if threads > 1 else []
                launch = ["mpirun", "--oversubscribe", *bind, "-n", str(n)] if n else []
                # each rank's peak RSS into its own file: ranks' stderr lines interleave under mpirun
                rss_at = os.path.join(work, "rss")
                timer = ["sh", "-c", 'exec /usr/bin/time -f "%M" -o "$0.${OMPI_COMM_WORLD_RANK:-0}" "$@"', rss_at]
                argv = [*launch, *timer, dk, *argv_of(max(n, 1)), "--threads", str(threads), "--quiet"]

                def rss_of():
                    return [int(open(f"{rss_at}.{r}").read().split()[-1]) / 1024 for r in range(max(n, 1))]

                timed(argv, 1)  # warm-up: page cache, the output in place
                t, rss = timed(argv, a.reps, rss_of)
                if n * threads == 1:
                    t1 = t
                eff = f"{t1 / t / (n * threads):.2f}" if n * threads > 1 and t1 else ""
                label = "1, no mpirun" if not n else str(n) if threads == 1 else f"{n} x {threads} threads"
                print(f"| {what} | {label} | {t:.2f} | {read_bytes / t / 1e9:.2f} | {ceiling:.2f} | {ceiling / t:.2f} | "
                      f"{eff} | {', '.join(f'{r:.0f}' for r in rss)} |", flush=True)

        for recipe in a.recipes.split(","):
            adapter = os.path.join(work, recipe.replace(":", "_").replace("=", "") + ".h5")
            cmd = lambda n, r=recipe, o=adapter: ["compress", "--base", base, "--finetuned", ft, "--recipe", r, "--out", o,
                                                  "--overwrite", *a.compress_args.split()]
            subprocess.run(["mpirun", "--oversubscribe", "-n", "1", dk, *cmd(1), "--threads", "1"], check=True,
                           capture_output=True, env=ENV)
            ceiling = t_read + (write_ceiling(os.path.getsize(adapter), work) if recipe == "raw" else 0)
            row(f"compress {recipe}" + (" (read + write ceiling)" if recipe == "raw" else ""), cmd, ceiling)
        for recipe in a.recipes.split(","):
            if recipe == "raw":
                continue
            adapter = os.path.join(work, recipe.replace(":", "_").replace("=", "") + ".h5")
            out = os.path.join(work, "applied")
            apply_in = files_of(base) + [adapter]
            ceiling = read_ceiling(apply_in) + write_ceiling(model_bytes, work)
            row(f"apply {recipe} (read + write ceiling)",
                lambda n, ad=adapter: ["apply", "--base", base, "--adapter", ad, "--out", out, "--overwrite",
                                       "--max-shard-size", "200MB"], ceiling, size_of(apply_in))
        try:
            import torch  # noqa: F401
        except ImportError:
            print("\nPyTorch peer: torch is not importable (apt-get install python3-torch); skipped")
            return
        torch.set_num_threads(1)
        out = os.path.join(work, "peer.bin")
        peer_compress_bitdelta(base, ft, out)  # warm-up
        best = 1e9
        for _ in range(a.reps):
            t = time.perf_counter()
            peer_compress_bitdelta(base, ft, out)
            best = min(best, time.perf_counter() - t)
        argv = ["mpirun", "--oversubscribe", "-n", "1", dk, "compress", "--base", base, "--finetuned", ft, "--recipe",
                "bitdelta", "--out", os.path.join(work, "bitdelta.h5"), "--overwrite", "--threads", "1", "--quiet"]
        timed(argv, 1)
        t_dk, _ = timed(argv, a.reps)
        print(f"\nPyTorch peer ({torch.__version__}, 1 thread), compress bitdelta tensor by tensor: {best:.2f} s; "
              f"deltakit 1 rank x 1 thread {t_dk:.2f} s: {best / t_dk:.1f}x")


if __name__ == "__main__":
    main()
