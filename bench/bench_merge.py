#!/usr/bin/env python3
"""Throughput of `deltakit merge` over 3 fine-tunes, 1 and 2 MPI ranks (one thread each) and 1
rank with 2 threads, beside a memcpy of the same input bytes measured in this script; peak RSS of
every rank next to the model's size. Inputs in page cache (a warm-up run first).

    bench/bench_merge.py --deltakit build/apps/deltakit [--size large] [--layers 8]
                         [--methods task_arithmetic,ties,dare_ties] [--reps 2]

GB/s counts the input read: the base plus the three fine-tunes. The output is cut into 100 MB
shards (a rank's threads each take a shard), and a 2-thread rank is given 2 cores
(`--map-by slot:PE=2`: mpirun binds a rank to one core by default).
"""
import argparse, os, subprocess, tempfile

from bench_scaling import memcpy_gbps, tensor_sizes, timed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--size", default="large")
    ap.add_argument("--layers", default="8")
    ap.add_argument("--methods", default="task_arithmetic,ties,dare_ties")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    a = ap.parse_args()
    dk = os.path.abspath(a.deltakit)
    with tempfile.TemporaryDirectory(dir=a.workdir) as work:
        base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
        subprocess.run([dk, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", a.size,
                        "--layers", a.layers, "--max-shard-size", "200MB"], check=True, capture_output=True)
        # three fine-tunes: the same bytes under three names (the merge reads each one)
        fts = []
        for i in range(3):
            fts.append(os.path.join(work, f"ft{i}"))
            os.symlink(ft, fts[-1])
        sizes = tensor_sizes(ft)
        model_bytes = sum(sizes)
        read = 4 * model_bytes
        copy = memcpy_gbps(ft)
        print(f"\n{a.size}, {a.layers} layers: {model_bytes / 1e6:.0f} MB per model, largest tensor "
              f"{max(sizes) / 1e6:.0f} MB; memcpy of a model's bytes {copy:.2f} GB/s\n")
        print("| method | ranks x threads | seconds | GB/s read | vs memcpy | max RSS per rank (MB) |")
        print("|---|---|---|---|---|---|")
        for method in a.methods.split(","):
            cfg = os.path.join(work, method + ".yml")
            with open(cfg, "w") as f:
                f.write(f"merge_method: {method}\nbase_model: {base}\nmodels:\n")
                for p in fts:
                    f.write(f"  - model: {p}\n    parameters: {{weight: 0.5, density: 0.5}}\n")
            for ranks, threads in ((1, 1), (2, 1), (1, 2)):
                out = os.path.join(work, "out")
                bind = ["--map-by", f"slot:PE={threads}"] if threads > 1 else []
                argv = ["mpirun", "--oversubscribe", *bind, "-n", str(ranks), "/usr/bin/time", "-f", "rss_kb=%M", dk,
                        "merge", cfg, "--out", out, "--overwrite", "--quiet", "--threads", str(threads),
                        "--max-shard-size", "100MB"]
                timed(argv, 1)
                t, rss = timed(argv, a.reps)
                print(f"| {method} | {ranks} x {threads} | {t:.2f} | {read / t / 1e9:.2f} | {read / t / 1e9 / copy:.2f} | "
                      f"{', '.join(f'{r:.0f}' for r in rss)} |")


if __name__ == "__main__":
    main()
