#!/usr/bin/env python3
"""Inputs truncated while a job reads them: compress (the fine-tune), apply (the base) and merge
(a fine-tune) each see every shard of that input cut to 4 KiB once the job's journal is
started (the headers are read, the data not yet). Each must end with exit 1 and one line naming a truncated shard ("shrank while in
use"): never SIGBUS, never an output, nothing left beside it.

    fault_truncate.py --deltakit BIN
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import run  # noqa: E402


def journal_started(folder, prefix):
    """The job's journal holds its job.json: the inputs' headers are read, their data not yet all."""
    return any(os.path.isfile(os.path.join(j, "job.json")) for j in glob.glob(os.path.join(folder, prefix + "*")))


def case(work, name, argv, out, victim):
    fresh = os.path.join(work, name + "-input")
    shutil.copytree(victim, fresh)
    argv = [fresh if a == victim else a for a in argv]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    prefix = "." + os.path.basename(out) + ".deltakit-"
    deadline = time.time() + 60
    while p.poll() is None and not journal_started(work, prefix) and time.time() < deadline:
        time.sleep(0.001)
    for shard in glob.glob(os.path.join(fresh, "*.safetensors")):
        os.truncate(shard, 4096)
    err = p.communicate(timeout=300)[1]
    lines = [l for l in err.splitlines() if l.strip()]
    if p.returncode == 0:
        sys.exit(f"FAIL {name}: the job ended before the truncation; the test needs a longer job")
    if p.returncode != 1 or len(lines) != 1 or "shrank while in use" not in lines[0] or fresh not in lines[0]:
        sys.exit(f"FAIL {name}: rc {p.returncode} (want 1, one line naming {fresh}: shrank while in use)\n{err}")
    left = [f for f in os.listdir(work) if ".deltakit-" in f] + ([out] if os.path.lexists(out) else [])
    if left:
        sys.exit(f"FAIL {name}: left behind: {left}")
    shutil.rmtree(fresh)
    print(f"ok {name}: {lines[0]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="deltakit-truncate-")
    try:
        base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
        run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", "medium",
            "--max-shard-size", "20MB")
        adapter = os.path.join(work, "a.h5")
        run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta", "--out", adapter,
            "--quiet")
        out = os.path.join(work, "out.h5")
        case(work, "compress", [a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "bitdelta",
                                "--out", out, "--threads", "1", "--quiet"], out, ft)
        out = os.path.join(work, "applied")
        case(work, "apply", [a.deltakit, "apply", "--base", base, "--adapter", adapter, "--out", out, "--quiet",
                             "--max-shard-size", "5MB"], out, base)
        cfg = os.path.join(work, "merge.yml")
        with open(cfg, "w") as f:
            f.write(f"merge_method: ties\nbase_model: {base}\nmodels:\n"
                    f"  - {{model: {os.path.join(work, 'merge-input')}, parameters: {{weight: 1, density: 0.5}}}}\n")
        out = os.path.join(work, "merged")
        case(work, "merge", [a.deltakit, "merge", cfg, "--out", out, "--quiet", "--threads", "1",
                             "--max-shard-size", "5MB"], out, ft)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
