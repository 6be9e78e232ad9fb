#!/usr/bin/env python3
"""deltakit under mpirun, one case per CTest test:
  identical    adapters (and applied checkpoints) byte-identical for mpirun -n 1, 2, 3 and for 1
               and 2 threads, for dare (random), cherry scope=model and topk scope=model (global
               budgets); the model-wide budgets hold exactly ceil/floor(frac·N) entries, and the
               topk one keeps exactly the largest |δ| of the whole model
  resume       a run killed after some tensors, resumed (with another rank count), gives the
               adapter of an uninterrupted run; a stale journal without --resume is refused
  split        --split-mb 0.25: the tensors over 256 KB of fp32 δ split into row blocks that the
               ranks and threads share; the adapter byte-identical to the unsplit one for -n 1, 2, 3
               and 1 and 2 threads (bitdelta matrix and row scales, quant)
  bad_shard    a base tensor that only rank 2 of 3 reads is damaged: apply ends in seconds with
               rank 2's message, non-zero, and leaves neither output nor journal
  full_disk    a 1 MiB tmpfs as the output folder: compress and apply fail with "No space left
               on device" and leave nothing behind (skips, exit 77, where tmpfs cannot be mounted)
    mpi_cli.py --deltakit BIN --mpirun MPIEXEC --case NAME
"""
import argparse
import glob
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import adapter_decode  # noqa: E402
from cli_run import MPI_ENV as ENV, run  # noqa: E402
from st_independent import read_checkpoint  # noqa: E402

SKIP = 77


def mpi(a, n, *argv):
    return [a.mpirun, "--oversubscribe", "-n", str(n), a.deltakit, *argv]


def run_mpi(a, n, *argv):
    p = subprocess.run(mpi(a, n, *argv), capture_output=True, text=True, timeout=300, env=ENV)
    if p.returncode != 0:
        sys.exit(f"FAIL: mpirun -n {n} deltakit {' '.join(argv)} -> {p.returncode}\n{p.stderr}")
    return p.stdout


def fixture(a, work, size="small", shard="2MB"):
    base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
    run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", size,
        "--max-shard-size", shard)
    return base, ft


def same_bytes(paths, what):
    first = open(paths[0], "rb").read()
    for p in paths[1:]:
        if open(p, "rb").read() != first:
            sys.exit(f"FAIL: {what}: {p} differs from {paths[0]}")


def bf16(raw):
    return (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)


def check_budget(adapter, base, ft, recipe):
    """The model-wide budget holds exactly its share of the pool's entries."""
    b, f = read_checkpoint(base), read_checkpoint(ft)
    with h5py.File(adapter, "r") as h:
        groups = [h["tensors"][k] for k in h["tensors"]]
        pool = [g for g in groups if "scope=model" in g.attrs["recipe"]]
        total = sum(int(np.prod(g.attrs["shape"])) for g in pool)
        if recipe.startswith("topk"):
            kept = sum(int(g.attrs["topk.count"]) for g in pool)
            want = math.floor(0.05 * total)
            # exactly the largest |δ| of the whole model: every kept one >= every dropped one
            kept_min, dropped_max = np.inf, -np.inf
            for g in pool:
                name = g.attrs["name"]
                d = np.abs(bf16(f[name][2]) - bf16(b[name][2]))
                mask = np.zeros(d.size, bool)
                mask[adapter_decode.positions(g, "topk", d.size)] = True
                if mask.any():
                    kept_min = min(kept_min, d[mask].min())
                if (~mask).any():
                    dropped_max = max(dropped_max, d[~mask].max())
            if kept_min < dropped_max:
                sys.exit(f"FAIL: topk scope=model kept |δ|={kept_min} but dropped {dropped_max}")
        else:
            kept = sum(int(g.attrs["cherry.count"]) for g in pool)
            want = math.ceil(0.01 * total)
        if kept != want or not pool:
            sys.exit(f"FAIL: {recipe}: {kept} entries kept over the model, want {want} of {total}")
        print(f"  {recipe}: {kept} of {total} entries over {len(pool)} tensors, as budgeted")


def case_identical(a, work):
    base, ft = fixture(a, work)
    for recipe in ["dare:p=0.9", "bitdelta:scale=row + cherry:frac=0.01,scope=model",
                   "topk:density=0.05,scope=model"]:
        outs = []
        log = os.path.join(work, "progress.jsonl")
        for n, threads in [(1, 1), (1, 2), (2, 1), (3, 1)]:
            out = os.path.join(work, f"a-{n}-{threads}.h5")
            run_mpi(a, n, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--only",
                    "*_proj.weight", "--threads", str(threads), "--out", out, "--overwrite", "--quiet",
                    *(["--log-json", log] if n == 3 else []))
            outs.append(out)
        # --log-json: rank 0 alone writes JSON lines, ending with the whole job done
        lines = [json.loads(ln) for ln in open(log)]
        done = [ln for ln in lines if ln["what"] == "compress"][-1]
        if not (done["final"] and done["done"] == done["total"] == len(read_checkpoint(ft))):
            sys.exit(f"FAIL: --log-json ends with {done}")
        os.remove(log)
        same_bytes(outs, recipe)
        if "scope=model" in recipe:
            check_budget(outs[0], base, ft, recipe)
        # decoded tensors: apply on 1, 2 and 3 ranks writes the same checkpoint
        applied = []
        for n in (1, 2, 3):
            out = os.path.join(work, f"applied-{n}")
            run_mpi(a, n, "apply", "--base", base, "--adapter", outs[0], "--out", out, "--overwrite",
                    "--max-shard-size", "1MB", "--quiet")
            applied.append(out)
        for f in sorted(os.listdir(applied[0])):
            same_bytes([os.path.join(d, f) for d in applied], f"{recipe}: applied {f}")
        print(f"ok: {recipe}: identical adapters for -n 1/2/3 and 1/2 threads, identical apply")
    # mpirun binds a rank to one core by default: threads asked beyond it are named in a warning,
    # and the default takes only the CPUs the rank may run on
    out = os.path.join(work, "bound.h5")
    def stderr_of(*argv):
        p = subprocess.run(mpi(a, 1, *argv), capture_output=True, text=True, timeout=300, env=ENV)
        if p.returncode != 0:
            sys.exit(f"FAIL: mpirun -n 1 deltakit {' '.join(argv)} -> {p.returncode}\n{p.stderr}")
        return p.stderr
    warned = stderr_of("compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta", "--threads", "2",
                       "--out", out, "--overwrite", "--quiet")
    bound = subprocess.run([a.mpirun, "--oversubscribe", "-n", "1", sys.executable, "-c",
                            "import os; print(len(os.sched_getaffinity(0)))"], capture_output=True, text=True,
                           timeout=60, env=ENV).stdout.strip()
    if bound != "1":
        print(f"ok: (this mpirun binds a rank to {bound!r} CPUs, not one: no warning expected)")
    elif "--map-by slot:PE=2" not in warned:
        sys.exit(f"FAIL: no warning for 2 threads on a rank bound to one core: {warned!r}")
    quiet = stderr_of("compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta", "--out", out,
                      "--overwrite", "--quiet")
    if "threads share" in quiet:
        sys.exit(f"FAIL: the default thread count oversubscribes a bound rank: {quiet!r}")
    print("ok: threads beyond a bound rank's CPUs are warned of; the default stays within them")


def case_split(a, work):
    base, ft = fixture(a, work)
    for recipe in ["bitdelta", "bitdelta:scale=row", "quant:bits=4"]:
        whole = os.path.join(work, "whole.h5")
        run_mpi(a, 1, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--split-mb", "0",
                "--out", whole, "--overwrite", "--quiet")
        outs = [whole]
        for n, threads in [(1, 1), (1, 2), (2, 1), (3, 1)]:
            out = os.path.join(work, f"split-{n}-{threads}.h5")
            log = os.path.join(work, f"split-{n}-{threads}.jsonl")
            run_mpi(a, n, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--split-mb", "0.25",
                    "--threads", str(threads), "--out", out, "--overwrite", "--quiet", "--log-json", log)
            outs.append(out)
            # the progress counts the journal's items: more than the tensors once some are split
            done = [json.loads(ln) for ln in open(log) if json.loads(ln)["what"] == "compress"][-1]
            if not (done["final"] and done["done"] == done["total"] > len(read_checkpoint(ft))):
                sys.exit(f"FAIL: {recipe}: no tensor was split (--log-json ends with {done})")
        same_bytes(outs, f"{recipe} split")
        print(f"ok: {recipe}: split into {done['total']} items for {len(read_checkpoint(ft))} tensors, "
              f"the unsplit adapter's bytes for -n 1/2/3 and 1/2 threads")


def journal_items(journal):
    try:
        return [f for f in os.listdir(journal) if f.startswith("t")]
    except FileNotFoundError:
        return []


def case_resume(a, work):
    base, ft = fixture(a, work, size="medium", shard="16MB")
    recipe = "bitdelta + cherry:frac=0.01,scope=model"
    full = os.path.join(work, "full.h5")
    run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--out", full,
        "--threads", "1", "--quiet")
    out = os.path.join(work, "resumed.h5")
    journal = os.path.join(work, ".resumed.h5.deltakit-compress")
    argv = ["compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--out", out, "--threads", "1",
            "--quiet"]
    # each rename (a record into the journal) slowed by the fault shim, so the kill lands between
    # items: with the stitch running beside the items, the job otherwise ends milliseconds after
    # its third record
    slow = dict(ENV, LD_PRELOAD=a.shim, DELTAKIT_FAULT_CALL="rename", DELTAKIT_FAULT_DELAY_MS="20")
    p = subprocess.Popen(mpi(a, 2, *argv), env=slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + 120
    while len(journal_items(journal)) < 3 and time.time() < deadline and p.poll() is None:
        time.sleep(0.005)
    # the whole session: mpirun puts its ranks in process groups of their own
    subprocess.run(["pkill", "-KILL", "-s", str(p.pid)])
    p.wait()
    time.sleep(0.2)  # the ranks are gone once mpirun's session is
    done = len(journal_items(journal))
    total = len(read_checkpoint(ft))
    if os.path.exists(out):
        sys.exit(f"FAIL: the killed run left an output at the final path (kill after {done} items)")
    if os.path.exists(out) or not 0 < done < total:
        sys.exit(f"FAIL: the kill came at {done} of {total} tensors; the test needs a partial journal")
    # without --resume: refused, the journal kept
    p = subprocess.run(mpi(a, 2, *argv), capture_output=True, text=True, env=ENV)
    if p.returncode == 0 or "--resume" not in p.stderr or not os.path.isdir(journal):
        sys.exit(f"FAIL: a stale journal without --resume: rc {p.returncode}\n{p.stderr}")
    # other options: refused too
    p = subprocess.run(mpi(a, 1, *argv, "--seed", "5", "--resume"), capture_output=True, text=True, env=ENV)
    if p.returncode == 0 or "other inputs or options" not in p.stderr:
        sys.exit(f"FAIL: resuming with other options: rc {p.returncode}\n{p.stderr}")
    res = json.loads(run_mpi(a, 3, *argv, "--resume", "--json").strip().splitlines()[-1])
    same_bytes([full, out], "resumed adapter")
    if res["resumed"] != done or os.path.exists(journal):
        sys.exit(f"FAIL: resumed {res['resumed']} tensors, the journal had {done}; journal left: {os.path.exists(journal)}")
    print(f"ok: killed after {done}/{total} tensors, resumed on 3 ranks: same bytes as one uninterrupted run")


def lpt(sizes, ranks):
    """deltakit's partition (src/pipeline/partition.cpp): largest first onto the least loaded."""
    order = sorted(range(len(sizes)), key=lambda i: -sizes[i])  # stable
    load, owner = [0] * ranks, [0] * len(sizes)
    for i in order:
        r = min(range(ranks), key=lambda k: (load[k], k))
        owner[i] = r
        load[r] += sizes[i] + 1
    return owner


def case_bad_shard(a, work):
    base, ft = fixture(a, work)
    adapter = os.path.join(work, "a.h5")
    run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", adapter, "--quiet")
    good = os.path.join(work, "good")
    run(a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", good, "--max-shard-size", "1MB")
    # the output shards apply plans, and which rank of 3 writes each
    index = json.load(open(os.path.join(good, "model.safetensors.index.json")))["weight_map"]
    shards = sorted(set(index.values()))
    tensors = read_checkpoint(base)
    sizes = [sum(len(tensors[t][2]) for t, s2 in index.items() if s2 == s) for s in shards]
    owner = dict(zip(shards, lpt(sizes, 3)))
    victim = next(t for t, s in index.items() if owner[s] == 2)
    # damage that tensor's bytes in a copy of the base (headers intact: only its reader notices)
    bad = os.path.join(work, "bad-base")
    shutil.copytree(base, bad)
    bindex = json.load(open(os.path.join(bad, "model.safetensors.index.json")))["weight_map"]
    path = os.path.join(bad, bindex[victim])
    data = bytearray(open(path, "rb").read())
    n = struct.unpack("<Q", data[:8])[0]
    begin = json.loads(data[8:8 + n])[victim]["data_offsets"][0] + 8 + n
    data[begin + 2] ^= 0x5A
    open(path, "wb").write(data)
    out = os.path.join(work, "out")
    t0 = time.time()
    p = subprocess.run(mpi(a, 3, "apply", "--base", bad, "--adapter", adapter, "--out", out, "--max-shard-size",
                           "1MB", "--quiet"), capture_output=True, text=True, env=ENV, timeout=120)
    dt = time.time() - t0
    want = f"error (rank 2 of 3): {bad}: tensor '{victim}' of the base differs"
    if p.returncode == 0 or want not in p.stderr:
        sys.exit(f"FAIL: rc {p.returncode}, expected «{want}» in:\n{p.stderr}")
    left = [f for f in os.listdir(work) if f.startswith(".out") or f == "out"]
    if left:
        sys.exit(f"FAIL: the failed job left {left}")
    if dt > 20:
        sys.exit(f"FAIL: the job took {dt:.1f} s to end")
    print(f"ok: rank 2's bad tensor '{victim}' ended the 3-rank job in {dt:.2f} s with rc {p.returncode}")


def case_full_disk(a, work):
    if os.geteuid() != 0:
        print("SKIP: mounting a tmpfs needs root, and this test runs as uid", os.geteuid())
        sys.exit(SKIP)
    base, ft = fixture(a, work)
    small = os.path.join(work, "small")
    os.mkdir(small)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", small], capture_output=True, text=True)
    if m.returncode != 0:
        print("SKIP: cannot mount a tmpfs here:", m.stderr.strip())
        sys.exit(SKIP)
    try:
        adapter = os.path.join(work, "a.h5")
        run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--out", adapter, "--quiet")
        jobs = [(n, ["compress", "--base", base, "--finetuned", ft, "--out", os.path.join(small, "o.h5")])
                for n in (1, 2, 3)]
        jobs += [(n, ["apply", "--base", base, "--adapter", adapter, "--out", os.path.join(small, "ckpt"),
                      "--max-shard-size", "1MB"]) for n in (1, 3)]
        for n, argv in jobs:
            p = subprocess.run(mpi(a, n, *argv, "--quiet"), capture_output=True, text=True, env=ENV, timeout=120)
            lines = [ln for ln in p.stderr.splitlines() if "deltakit" in ln and "error" in ln]
            if p.returncode == 0 or not lines or "No space left on device" not in lines[0]:
                sys.exit(f"FAIL: {argv[0]} on {n} rank(s) into a full disk: rc {p.returncode}\n{p.stderr}")
            if os.listdir(small):
                sys.exit(f"FAIL: {argv[0]} on {n} rank(s) left {os.listdir(small)} on the full disk")
            print(f"ok: {argv[0]} -n {n}: {lines[0]}")
    finally:
        # a rank that MPI_Abort is still taking down can hold the mount for a moment
        for _ in range(50):
            if subprocess.run(["umount", small], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", small])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--mpirun", required=True)
    ap.add_argument("--shim", help="tests/fault's LD_PRELOAD shim (the resume case slows its job with it)")
    ap.add_argument("--case", required=True, choices=["identical", "resume", "split", "bad_shard", "full_disk"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        globals()["case_" + a.case](a, work)


if __name__ == "__main__":
    main()
