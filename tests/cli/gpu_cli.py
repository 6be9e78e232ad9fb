#!/usr/bin/env python3
"""`--device cuda` end to end.
Without a usable GPU (no CUDA in the build, or no driver/device): compress and apply refuse with
one line naming --device cuda and why, exit 1, and leave no output; a device name other than cpu
or cuda is a usage error (exit 2).
With a GPU: for each one-level BitDelta recipe, DARE alone (and recipes the GPU leaves to the CPU) and each
dtype, compress and apply with --device cuda give the same bytes as --device cpu, on 1 rank and
on 2 (mpirun, each rank the GPU of its node-local rank); merge (task arithmetic, TIES, DARE-TIES,
DARE-linear) with --device cuda gives the CPU's checkpoint. Without a GPU, merge --device cuda is
refused as compress and apply are.
    gpu_cli.py --deltakit BIN [--require-gpu]
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import MPI_ENV, run  # noqa: E402


def same_folder(a, b):
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b)), (names, sorted(os.listdir(b)))
    for n in names:
        assert filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False), f"{n} differs"


def merge_config(work, method, base, models):
    path = os.path.join(work, f"{method}.yml")
    lines = [f"merge_method: {method}", f"base_model: {base}", "models:"]
    for m, w in zip(models, (0.7, 0.5)):
        lines += [f"  - model: {m}", f"    parameters: {{weight: {w}, density: 0.5}}"]
    open(path, "w").write("\n".join(lines + ["parameters: {normalize: true}", "seed: 11"]) + "\n")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--require-gpu", action="store_true", help="fail instead of checking the refusal")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        fixtures = {}
        for dtype in ("bf16", "f16", "f32"):
            base, ft = os.path.join(work, "base-" + dtype), os.path.join(work, "ft-" + dtype)
            run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", "tiny", "--dtype", dtype)
            fixtures[dtype] = (base, ft)
        base, ft = fixtures["bf16"]
        out = os.path.join(work, "probe.h5")
        p = subprocess.run([a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta",
                            "--out", out, "--device", "cuda"], capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            if a.require_gpu:
                sys.exit(f"FAIL: --require-gpu, but: {p.stderr.strip()}")
            lines = p.stderr.strip().splitlines()
            assert p.returncode == 1 and len(lines) == 1, (p.returncode, p.stderr)
            assert "--device cuda" in lines[0] or "without CUDA" in lines[0], lines[0]
            assert not os.path.exists(out), "a refused job left an output"
            adapter = os.path.join(work, "cpu.h5")
            run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta", "--out", adapter)
            p2 = subprocess.run([a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out",
                                 os.path.join(work, "applied"), "--device", "cuda"], capture_output=True, text=True)
            assert p2.returncode == 1 and len(p2.stderr.strip().splitlines()) == 1, p2.stderr
            assert not os.path.exists(os.path.join(work, "applied"))
            p3 = subprocess.run([a.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", out,
                                 "--device", "gpu"], capture_output=True, text=True)
            assert p3.returncode == 2 and "--device must be cpu or cuda" in p3.stderr, p3.stderr
            cfg = merge_config(work, "task_arithmetic", base, [ft])
            merged = os.path.join(work, "merged")
            p4 = subprocess.run([a.deltakit, "merge", cfg, "--out", merged, "--device", "cuda"], capture_output=True,
                                text=True)
            assert p4.returncode == 1 and len(p4.stderr.strip().splitlines()) == 1, p4.stderr
            assert "--device cuda" in p4.stderr or "without CUDA" in p4.stderr, p4.stderr
            assert not os.path.exists(merged), "a refused merge left an output"
            print("OK: no usable GPU here; --device cuda refused cleanly:", lines[0])
            return
        print("GPU in use: same bytes as the CPU for compress and apply")
        recipes = ["bitdelta", "bitdelta:scale=row", "bitdelta:scale=group:128", "dare:p=0.9", "dare:p=0.5,rescale=none",
                   "quant:bits=4", "bitdelta + cherry:frac=0.01"]
        for dtype, (base, ft) in fixtures.items():
            for recipe in recipes:
                outs = {}
                for device in ("cpu", "cuda"):
                    adapter = os.path.join(work, f"{device}.h5")
                    run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--out",
                        adapter, "--overwrite", "--device", device)
                    applied = os.path.join(work, f"{device}-applied")
                    run(a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", applied, "--overwrite",
                        "--device", device)
                    outs[device] = (adapter, applied)
                assert filecmp.cmp(outs["cpu"][0], outs["cuda"][0], shallow=False), f"{dtype} {recipe}: adapters differ"
                same_folder(outs["cpu"][1], outs["cuda"][1])
                print(f"  {dtype} {recipe}: same adapter, same applied checkpoint")
        # merge: the mix on the GPU, of the fine-tune and another checkpoint of the same base (a
        # DARE adapter applied)
        for dtype, (base, ft) in fixtures.items():
            other = os.path.join(work, f"other-{dtype}")
            adapter = os.path.join(work, "other.h5")
            run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "dare:p=0.5", "--out", adapter,
                "--overwrite")
            run(a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", other, "--overwrite")
            for method in ("task_arithmetic", "ties", "dare_ties", "dare_linear"):
                cfg = merge_config(work, method, base, [ft, other])
                outs = {}
                for device in ("cpu", "cuda"):
                    outs[device] = os.path.join(work, f"merged-{device}")
                    run(a.deltakit, "merge", cfg, "--out", outs[device], "--overwrite", "--device", device)
                same_folder(outs["cpu"], outs["cuda"])
                print(f"  {dtype} merge {method}: same checkpoint")
        if not shutil.which("mpirun"):
            print("  (no mpirun on this machine: the 2-rank check did not run)")
            return
        base, ft = fixtures["bf16"]
        two = os.path.join(work, "two.h5")
        subprocess.run(["mpirun", "-n", "2", a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe",
                        "bitdelta:scale=row", "--out", two, "--device", "cuda"], check=True, env=MPI_ENV, timeout=300)
        one = os.path.join(work, "one.h5")
        run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta:scale=row", "--out", one)
        assert filecmp.cmp(one, two, shallow=False), "2 ranks on the GPU differ from 1 rank on the CPU"
        print("  mpirun -n 2 --device cuda: same adapter as 1 CPU rank")


if __name__ == "__main__":
    main()
