#!/usr/bin/env python3
"""Kill sweep: compress (whole tensors, and split into row blocks), apply and merge on 1, 2 and 3 ranks, each SIGKILLed (the whole job: its
session, mpirun and every rank) at TRIALS random moments, then run again with --resume. Every time:

  - right after the kill the output path holds nothing, or the complete output (the job had
    finished): never a partial file or folder;
  - the rerun with --resume ends with exit 0 and the output is byte-identical to an
    uninterrupted run; no journal and no temporary is left beside it;
  - once per command, a plain rerun over a journal the kill left is refused, naming --resume;
  - where a compress kill at k items left a journal, two of its tensor records are first torn as a
    machine crash may leave them (they are renamed in without an fsync): one cut short, one
    zeroed; --resume checks every record and redoes those.

Half the moments are uniform over [0, 1.2 x the uninterrupted run's time], half come once the
journal holds k random items (from a fixed seed), so they fall in start-up, the per-item work,
the stitch and the commit. Prints one row per
command and rank count: trials, kills that left a journal, kills before any work, kills after
the end.

    fault_kill.py --deltakit BIN [--mpirun MPIEXEC] [--trials 20]
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import MPI_ENV as ENV, run  # noqa: E402
from fault_common import JobInputs, leftovers, remove, tree_equal  # noqa: E402




def tear_records(journal):
    """A compress journal's tensor records (renamed in without an fsync) as a crash may leave them:
    the first cut to half its length, the second zeroed at its full length. --resume must check
    them and redo those tensors. Returns how many were torn."""
    if not journal:
        return 0
    records = sorted(f for f in os.listdir(journal) if f.endswith(".part"))[:2]
    for k, f in enumerate(records):
        path = os.path.join(journal, f)
        size = os.path.getsize(path)
        with open(path, "r+b") as fh:
            if k == 0:
                fh.truncate(size // 2)
            else:
                fh.write(bytes(size))
    return len(records)


class Sweep:
    def __init__(self, a, work):
        self.a, self.work = a, work
        self.rng = random.Random(20261130)
        inputs = JobInputs(a.deltakit, work, "small", "1MB")
        self.base, self.ft, self.adapter, self.merge_yml = inputs.base, inputs.ft, inputs.adapter, inputs.merge_yml
        self.out_dir = os.path.join(work, "runs")
        os.mkdir(self.out_dir)

    def argv(self, cmd, out):
        if cmd == "compress":
            return ["compress", "--base", self.base, "--finetuned", self.ft, "--recipe",
                    "bitdelta + cherry:frac=0.01,scope=model", "--out", out, "--threads", "1", "--quiet"]
        if cmd == "compress_split":  # tensors over 256 KB of fp32 δ in row blocks, joined by rank 0
            return ["compress", "--base", self.base, "--finetuned", self.ft, "--recipe", "quant:bits=4",
                    "--split-mb", "0.25", "--out", out, "--threads", "1", "--quiet"]
        if cmd == "apply":
            return ["apply", "--base", self.base, "--adapter", self.adapter, "--out", out, "--max-shard-size", "1MB",
                    "--quiet"]
        return ["merge", self.merge_yml, "--out", out, "--max-shard-size", "1MB", "--threads", "1", "--quiet"]

    def launch(self, ranks, argv):
        prefix = [self.a.deltakit] if ranks == 1 or not self.a.mpirun else \
            [self.a.mpirun, "--oversubscribe", "-n", str(ranks), self.a.deltakit]
        return prefix + argv

    def journal(self, out):
        """The job's journal folder, once its job.json landed (before, a rerun just starts again)."""
        for f in os.listdir(self.out_dir):
            path = os.path.join(self.out_dir, f)
            if f.startswith("." + os.path.basename(out) + ".deltakit-") and "-tmp-" not in f and \
                    os.path.isfile(os.path.join(path, "job.json")):
                return path
        return None

    def items(self, out):
        j = self.journal(out)
        try:
            return [f for f in os.listdir(j) if f != "job.json" and not f.startswith(".")] if j else []
        except FileNotFoundError:
            return []

    def sweep(self, cmd, ranks, reference):
        out = os.path.join(self.out_dir, "out.h5" if cmd.startswith("compress") else "out")
        argv = self.argv(cmd, out)
        t0 = time.time()
        p = subprocess.run(self.launch(ranks, argv), capture_output=True, text=True, env=ENV, timeout=300)
        took = time.time() - t0
        if p.returncode != 0 or not tree_equal(out, reference):
            sys.exit(f"FAIL {cmd} x{ranks}: the uninterrupted run: rc {p.returncode}, same bytes "
                     f"{tree_equal(out, reference)}\n{p.stderr}")
        remove(out)
        counts = {"journal": 0, "before": 0, "finished": 0, "torn": 0}
        refused = False
        for trial in range(self.a.trials):
            p = subprocess.Popen(self.launch(ranks, argv), env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
            t_start = time.time()
            if trial % 2 == 0:  # at a moment of the run
                time.sleep(self.rng.uniform(0, 1.2 * took))
            else:  # once k items are journaled (start-up dominates a small job under mpirun)
                k = self.rng.randint(1, 8)
                while len(self.items(out)) < k and p.poll() is None and time.time() < t_start + 60:
                    time.sleep(0.001)
            delay = time.time() - t_start
            try:  # mpirun's session: its ranks are in process groups of their own
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            subprocess.run(["pkill", "-KILL", "-s", str(p.pid)])
            p.wait()
            gone = time.time() + 10  # SIGKILL is delivered asynchronously: wait for every rank to be gone
            while subprocess.run(["pgrep", "-s", str(p.pid)], stdout=subprocess.DEVNULL).returncode == 0:
                if time.time() > gone:
                    sys.exit(f"FAIL {cmd} x{ranks}: processes of the killed job outlived SIGKILL by 10 s")
                time.sleep(0.01)
            where = f"FAIL {cmd} x{ranks} trial {trial} (killed at {delay:.3f} s of {took:.3f} s)"
            if os.path.lexists(out):
                if not tree_equal(out, reference):
                    sys.exit(f"{where}: the output path holds a partial or different output")
                counts["finished"] += 1
                remove(out)
                continue
            if self.journal(out):
                counts["journal"] += 1
                if not refused:  # without --resume: refused, naming the flag
                    q = subprocess.run(self.launch(ranks, argv), capture_output=True, text=True, env=ENV, timeout=300)
                    if q.returncode == 0 or "--resume" not in q.stderr or os.path.lexists(out):
                        sys.exit(f"{where}: a rerun without --resume over the journal: rc {q.returncode}\n{q.stderr}")
                    refused = True
                if trial % 2 == 1:  # as a machine crash may leave records renamed in but unwritten
                    counts["torn"] += tear_records(self.journal(out))
            else:
                counts["before"] += 1
            q = subprocess.run(self.launch(ranks, argv + ["--resume"]), capture_output=True, text=True, env=ENV,
                               timeout=300)
            if q.returncode != 0:
                sys.exit(f"{where}: the rerun with --resume failed: rc {q.returncode}\n{q.stderr}")
            if not tree_equal(out, reference):
                sys.exit(f"{where}: the resumed output differs from an uninterrupted run")
            left = leftovers(self.out_dir)
            if left:
                sys.exit(f"{where}: left beside the output after the resumed run: {left}")
            remove(out)
        print(f"{cmd:9s} ranks {ranks}: {self.a.trials} kills: {counts['journal']} mid-job (resumed), "
              f"{counts['before']} before any journal, {counts['finished']} after the end, "
              f"{counts['torn']} records torn; "
              f"every output identical to an uninterrupted run ({took:.2f} s)", flush=True)
        return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--mpirun")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--commands", default="compress,compress_split,apply,merge")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="deltakit-kill-")
    try:
        s = Sweep(a, work)
        total = {"journal": 0, "before": 0, "finished": 0, "torn": 0}
        for cmd in a.commands.split(","):
            reference = os.path.join(work, "reference-" + cmd + (".h5" if cmd.startswith("compress") else ""))
            run(a.deltakit, *s.argv(cmd, reference))
            for ranks in (1, 2, 3) if a.mpirun else (1,):
                for k, v in s.sweep(cmd, ranks, reference).items():
                    total[k] += v
        if total["journal"] == 0:
            sys.exit("FAIL: no kill landed mid-job; the sweep tested nothing")
        kills = total["journal"] + total["before"] + total["finished"]
        print(f"ok: {kills} kills, {total['journal']} mid-job, {total['torn']} journal records torn before a "
              f"resume; every resumed output identical")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
