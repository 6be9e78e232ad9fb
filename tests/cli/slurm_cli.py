#!/usr/bin/env python3
"""slurm/ on a real one-node Slurm: brings one up from Debian's packages (slurm/local_cluster.sh),
submits slurm/compress.sbatch, slurm/apply.sbatch and slurm/merge.sbatch with 2 tasks each, waits,
and checks that the adapter and the checkpoints equal what one process writes; then runs the
Riemann sweep as a 2-task job array (slurm/riemann.sbatch) and joins its parts. Exit 77 (skipped) with the
reason when this machine cannot run Slurm (no root, packages missing, a daemon refusing).
With --frontier it runs only the bytes-vs-quality frontier (--quick) as a 2-task array
(slurm/frontier.sbatch) and collects it (skipped where ../shared/data lacks stories260K).
    slurm_cli.py --deltakit BIN --slurm-dir SLURM_DIR [--frontier]
"""
import argparse
import csv
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import run  # noqa: E402

SKIP = 77


def wait(job, log, timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        q = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True)
        if not q.stdout.strip():
            break
        time.sleep(0.5)
    else:
        subprocess.run(["scancel", job])
        sys.exit(f"FAIL: job {job} still queued or running after {timeout} s")
    text = open(log).read() if os.path.exists(log) else "(no log)"
    return text, time.time() - t0


def submit(slurm, script, ntasks, args, log, env):
    p = subprocess.run(["sbatch", "--parsable", "-n", str(ntasks), "-o", log, os.path.join(slurm, script), *args],
                       capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"FAIL: sbatch {script}: {p.stderr}")
    return p.stdout.strip().split(";")[0]


def frontier_array(a, env, work):
    # the frontier (--quick) as a 2-task array on stories260K, where ../shared/data has it
    data = os.path.abspath(os.path.join(a.slurm_dir, "..", "..", "shared", "data"))
    if os.path.exists(os.path.join(data, "stories260K.bin")):
        out_dir = os.path.join(work, "frontier")
        log = os.path.join(work, "frontier-%a.log")
        fenv = dict(env, DATA=data, FRONTIER_DIR=os.path.join(a.slurm_dir, "..", "experiments", "frontier"))
        p = subprocess.run(["sbatch", "--parsable", "--array=0-1", "-o", log,
                            os.path.join(a.slurm_dir, "frontier.sbatch"), out_dir, "--quick"],
                           capture_output=True, text=True, env=fenv)
        if p.returncode != 0:
            sys.exit(f"FAIL: sbatch frontier.sbatch: {p.stderr}")
        job = p.stdout.strip().split(";")[0]
        text, dt = wait(job, log.replace("%a", "0"), timeout=600)
        parts = sorted(os.listdir(os.path.join(out_dir, "parts"))) if os.path.isdir(os.path.join(out_dir, "parts")) else []
        if parts != ["part-000-of-002.jsonl", "part-001-of-002.jsonl"]:
            sys.exit(f"FAIL: the frontier array wrote {parts}\n{text}\n" + open(log.replace("%a", "1")).read())
        subprocess.run([sys.executable, os.path.join(fenv["FRONTIER_DIR"], "run.py"), "--collect", "--quick",
                        "--out", out_dir], check=True, capture_output=True, env=fenv)
        rows = list(csv.DictReader(open(os.path.join(out_dir, "frontier.csv"))))
        quick = [l for l in open(os.path.join(fenv["FRONTIER_DIR"], "recipes.txt"))
                 if l.strip() and not l.startswith("#") and l.split()[-1] == "quick"]
        if len(rows) != len(quick) + 2:  # the quick recipes, the fine-tune and the base
            sys.exit(f"FAIL: the collected frontier holds {len(rows)} rows")
        print(f"ok: frontier.sbatch, a 2-task array, job {job} ({dt:.1f} s): {len(rows)} rows collected")
    else:
        print(f"skip: frontier.sbatch (no stories260K.bin in {data})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--slurm-dir", required=True)
    ap.add_argument("--frontier", action="store_true", help="run only the frontier array (slurm.frontier)")
    a = ap.parse_args()
    state = tempfile.mkdtemp(prefix="deltakit-slurm-")
    up = subprocess.run(["bash", os.path.join(a.slurm_dir, "local_cluster.sh"), "up", state],
                        capture_output=True, text=True)
    if up.returncode == SKIP:
        print(up.stdout.strip().splitlines()[-1])
        sys.exit(SKIP)
    if up.returncode != 0:
        sys.exit(f"FAIL: local_cluster.sh up: {up.stdout}{up.stderr}")
    print(up.stdout.strip())
    try:
        # job files where slurmd (root, same machine) can read and write them
        work = tempfile.mkdtemp(prefix="deltakit-slurm-work-")
        if a.frontier:
            env = dict(os.environ, DELTAKIT=os.path.abspath(a.deltakit))
            frontier_array(a, env, work)
            shutil.rmtree(work, ignore_errors=True)
            return
        base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
        run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", "small",
            "--max-shard-size", "2MB")
        recipe = "dare:p=0.9 > bitdelta + cherry:frac=0.01,scope=model"
        single = os.path.join(work, "single.h5")
        run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--out", single, "--quiet")
        # jobs inherit this environment; no leak check under MPI in the ASan build (see mpi_cli.py)
        env = dict(os.environ, DELTAKIT=os.path.abspath(a.deltakit),
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")
        out = os.path.join(work, "slurm.h5")
        log = os.path.join(work, "compress.log")
        job = submit(a.slurm_dir, "compress.sbatch", 2, [base, ft, out, recipe, "--", "--quiet"], log, env)
        text, dt = wait(job, log)
        if not os.path.exists(out) or open(out, "rb").read() != open(single, "rb").read():
            sys.exit(f"FAIL: the 2-task Slurm adapter differs from the single-process one\n{text}")
        print(f"ok: compress.sbatch, 2 tasks, job {job} ({dt:.1f} s): same bytes as one process\n  {text.strip()}")

        single_dir = os.path.join(work, "single-ckpt")
        run(a.deltakit, "apply", "--base", base, "--adapter", single, "--out", single_dir, "--max-shard-size", "1MB")
        out_dir = os.path.join(work, "slurm-ckpt")
        log = os.path.join(work, "apply.log")
        job = submit(a.slurm_dir, "apply.sbatch", 2, [base, out, out_dir, "--", "--max-shard-size", "1MB", "--quiet"],
                     log, env)
        text, dt = wait(job, log)
        files = sorted(os.listdir(single_dir))
        if not os.path.isdir(out_dir) or sorted(os.listdir(out_dir)) != files or \
                filecmp.cmpfiles(single_dir, out_dir, files, shallow=False)[0] != files:
            sys.exit(f"FAIL: the 2-task Slurm checkpoint differs from the single-process one\n{text}")
        print(f"ok: apply.sbatch, 2 tasks, job {job} ({dt:.1f} s): {len(files)} files, same bytes as one process")

        # dare_ties of the fine-tune's checkpoint and the Slurm-made adapter, 2 tasks
        cfg = os.path.join(work, "merge.yml")
        with open(cfg, "w") as f:
            f.write(f"merge_method: dare_ties\nbase_model: {base}\nseed: 3\nmodels:\n"
                    f"  - {{model: {ft}, parameters: {{weight: 0.7, density: 0.5}}}}\n"
                    f"  - {{model: {out}, parameters: {{weight: 0.5, density: 0.3}}}}\n")
        single_dir = os.path.join(work, "single-merge")
        run(a.deltakit, "merge", cfg, "--out", single_dir, "--max-shard-size", "1MB", "--quiet")
        out_dir = os.path.join(work, "slurm-merge")
        log = os.path.join(work, "merge.log")
        job = submit(a.slurm_dir, "merge.sbatch", 2, [cfg, out_dir, "--", "--max-shard-size", "1MB", "--quiet"], log,
                     env)
        text, dt = wait(job, log)
        files = sorted(os.listdir(single_dir))
        if not os.path.isdir(out_dir) or sorted(os.listdir(out_dir)) != files or \
                filecmp.cmpfiles(single_dir, out_dir, files, shallow=False)[0] != files:
            sys.exit(f"FAIL: the 2-task Slurm merge differs from the single-process one\n{text}")
        print(f"ok: merge.sbatch, 2 tasks, job {job} ({dt:.1f} s): {len(files)} files, same bytes as one "
              f"process")

        # the Riemann sweep as a job array: 2 chunks of 4 edits on the fixture's pair, joined after
        models = os.path.join(work, "models")
        os.makedirs(models)
        run(a.deltakit, "train", "--size", "tiny", "--steps", "20", "--out", os.path.join(models, "base"), "--quiet")
        run(a.deltakit, "finetune", "--model", os.path.join(models, "base"), "--task", "rev", "--size", "tiny",
            "--steps", "10", "--out", os.path.join(models, "ft-rev"), "--quiet")
        edits = os.path.join(work, "edits.txt")
        with open(edits, "w") as f:
            f.write("# five edits, one a model edit whose checkpoint the tasks make first (prepare_models.sh)\n"
                    "dare:p=0.5,k=0\nbitdelta:m=1\nexpo:alpha=0.5\nmagnitude:p=0.5\n"
                    "model:path={models}/bitdelta-distill-{skill},label=bitdelta_distill\n")
        out_dir = os.path.join(work, "riemann")
        log = os.path.join(work, "riemann-%a.log")
        renv = dict(env, SKILLS="rev", CHUNKS="2", RIEMANN_ARGS="--samples 8 --samples-task 10 --prompts 4",
                    RIEMANN_PREPARE=os.path.join(a.slurm_dir, "..", "experiments", "riemann", "prepare_models.sh"),
                    PREPARE_ARGS="--distill-steps 5")
        p = subprocess.run(["sbatch", "--parsable", "--array=0-1", "-o", log,
                            os.path.join(a.slurm_dir, "riemann.sbatch"), models, out_dir, edits],
                           capture_output=True, text=True, env=renv)
        if p.returncode != 0:
            sys.exit(f"FAIL: sbatch riemann.sbatch: {p.stderr}")
        job = p.stdout.strip().split(";")[0]
        text, dt = wait(job, log.replace("%a", "0"))
        parts = sorted(os.listdir(os.path.join(out_dir, "parts"))) if os.path.isdir(os.path.join(out_dir, "parts")) else []
        if parts != ["rev-0.jsonl", "rev-1.jsonl"]:
            sys.exit(f"FAIL: the riemann array wrote {parts}\n{text}")
        subprocess.run(["bash", os.path.join(a.slurm_dir, "..", "experiments", "riemann", "run.sh"), "--collect",
                        out_dir, edits], check=True, capture_output=True, env=dict(renv, SKILLS="rev"))
        got = [r["edit"] for r in csv.DictReader(open(os.path.join(out_dir, "edits.csv")))]
        if got != ["dare:p=0.5,k=0", "bitdelta:m=1", "expo:alpha=0.5", "magnitude:p=0.5", "model:label=bitdelta_distill"]:
            sys.exit(f"FAIL: the collected sweep holds {got}")
        if not os.path.exists(os.path.join(models, "bitdelta-distill-rev", "config.json")):
            sys.exit("FAIL: the array did not make the model edit's checkpoint")
        print(f"ok: riemann.sbatch, a 2-task array, job {job} ({dt:.1f} s): 5 edits (one a distilled BitDelta "
              "checkpoint made in the array) measured and collected in order")

        shutil.rmtree(work, ignore_errors=True)
    finally:
        subprocess.run(["bash", os.path.join(a.slurm_dir, "local_cluster.sh"), "down", state])
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
