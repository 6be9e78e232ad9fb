#!/usr/bin/env python3
"""Failing system calls: compress, apply and merge run under an LD_PRELOAD shim
(tests/fault/fail_syscall.c) that makes the Nth write / pwrite / read / fsync / rename / open
(for writing) / mmap on a regular file fail, swept over N (every N where the command makes at
most 12 such calls, 11 spread values beyond; --points P: P, fewer beyond). For each N:

  - with EIO or ENOSPC (alternating): exit 1 or 2, exactly one line on stderr, and nothing left
    beside the output: no temporary, no journal, and at the output path nothing, or (for a
    failure after the final rename, e.g. the folder's fsync) the complete output;
    (a failure the program does not need to see, such as HDF5's in-memory driver failing to open
    a file it never reads, may instead leave exit 0 and the right bytes);
  - with EINTR (three times in a row from the Nth call; not for mmap, which never returns it): retried, not reported: exit 0 and the
    same bytes as a run without faults.

Prints one row per command and call: calls made, failures injected, outcomes.

    fault_syscalls.py --deltakit BIN --shim LIB
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import run  # noqa: E402
from fault_common import JobInputs, leftovers, remove, tree_equal  # noqa: E402

CALLS = ["write", "pwrite", "read", "fsync", "rename", "open", "mmap"]
# HDF5 1.10 leaks a cache block when an injected read fails inside it (tests/fault/lsan_hdf5.supp)
LSAN_SUPPRESSIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fault", "lsan_hdf5.supp")




def spread(count, points=12):
    """Which calls to fail: every one up to `points` calls, else the first, the last and points
    spread between (points=12: 11 of them; a thinner sweep keeps both ends and the middle)."""
    if count <= points:
        return list(range(1, count + 1))
    if points < 12:
        return sorted({1, 2, count - 1, count} | {1 + (count - 1) * k // (points - 3) for k in range(1, points - 3)})
    picks = {1, 2, 3, count - 1, count} | {1 + (count - 1) * k // 7 for k in range(1, 7)}
    return sorted(picks)


class Sweep:
    def __init__(self, a, work):
        self.a, self.work = a, work
        inputs = JobInputs(a.deltakit, work, "tiny", "100KB")
        self.base, self.ft, self.adapter, self.merge_yml = inputs.base, inputs.ft, inputs.adapter, inputs.merge_yml
        self.runs = os.path.join(work, "runs")
        os.mkdir(self.runs)
        self.count_file = os.path.join(work, "count")

    def argv(self, cmd, out):
        if cmd == "compress":
            return [self.a.deltakit, "compress", "--base", self.base, "--finetuned", self.ft, "--recipe",
                    "bitdelta + cherry:frac=0.01", "--out", out, "--quiet", "--threads", "1"]
        if cmd == "apply":
            return [self.a.deltakit, "apply", "--base", self.base, "--adapter", self.adapter, "--out", out,
                    "--max-shard-size", "100KB", "--quiet"]
        return [self.a.deltakit, "merge", self.merge_yml, "--out", out, "--max-shard-size", "100KB", "--quiet",
                "--threads", "1"]

    def run(self, cmd, out, call, n, err):
        env = dict(os.environ, LD_PRELOAD=self.a.shim, DELTAKIT_FAULT_CALL=call, DELTAKIT_FAULT_N=str(n),
                   DELTAKIT_FAULT_ERRNO=err, DELTAKIT_FAULT_COUNT=self.count_file, OMP_NUM_THREADS="1",
                   ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0",
                   LSAN_OPTIONS=os.environ.get("LSAN_OPTIONS", "") + ":print_suppressions=0:suppressions=" + LSAN_SUPPRESSIONS)
        p = subprocess.run(self.argv(cmd, out), capture_output=True, text=True, env=env, timeout=120)
        with open(self.count_file) as f:
            return p, int(f.read())

    def sweep(self, cmd, call, reference):
        out = os.path.join(self.runs, "out.h5" if cmd == "compress" else "out")
        p, count = self.run(cmd, out, call, 0, "EIO")  # no fault: how many calls
        if p.returncode != 0 or not tree_equal(out, reference):
            sys.exit(f"FAIL {cmd}: a run under the shim without faults: rc {p.returncode}\n{p.stderr}")
        remove(out)
        outcomes = {"failed cleanly": 0, "retried": 0, "complete, then failed": 0, "no effect": 0}
        for i, n in enumerate(spread(count, self.a.points)):
            # mmap never fails with EINTR (mmap(2)): only the errors
            for err in (["EIO", "ENOSPC"][i % 2],) + (() if call == "mmap" else ("EINTR",)):
                p, _ = self.run(cmd, out, call, n, err)
                where = f"FAIL {cmd}, {call} #{n} of {count} failing with {err}"
                lines = [l for l in p.stderr.splitlines() if l.strip()]
                if err == "EINTR":
                    if p.returncode != 0 or not tree_equal(out, reference):
                        sys.exit(f"{where}: not retried: rc {p.returncode}\n{p.stderr}")
                    outcomes["retried"] += 1
                elif p.returncode == 0 and tree_equal(out, reference):
                    outcomes["no effect"] += 1  # e.g. HDF5's in-memory driver probing a file it does not need
                else:
                    if p.returncode not in (1, 2) or len(lines) != 1:
                        sys.exit(f"{where}: rc {p.returncode}, {len(lines)} stderr lines (want 1 or 2, one line)\n"
                                 f"{p.stderr}")
                    if os.path.lexists(out):
                        if not tree_equal(out, reference):
                            sys.exit(f"{where}: a partial output at the output path\n{p.stderr}")
                        outcomes["complete, then failed"] += 1
                    else:
                        outcomes["failed cleanly"] += 1
                left = leftovers(self.runs)
                if left:
                    sys.exit(f"{where}: left behind: {left}\n{p.stderr}")
                remove(out)
        injected = sum(outcomes.values())
        print(f"{cmd:9s} {call:7s}: {count:4d} calls, {injected:3d} failures injected: " +
              ", ".join(f"{v} {k}" for k, v in outcomes.items()), flush=True)
        return injected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--commands", default="compress,apply,merge")
    ap.add_argument("--calls", default=",".join(CALLS))
    # the sanitizer build's run: every command, call and outcome, at fewer points of each sweep
    # (each run there costs several times a Release run; the Release build sweeps them all)
    ap.add_argument("--points", type=int, default=12)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="deltakit-fault-")
    try:
        s = Sweep(a, work)
        total = 0
        for cmd in a.commands.split(","):
            reference = os.path.join(work, "reference-" + cmd + (".h5" if cmd == "compress" else ""))
            run(*s.argv(cmd, reference))
            for call in a.calls.split(","):
                total += s.sweep(cmd, call, reference)
        print(f"ok: {total} failures injected; each one clean")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
