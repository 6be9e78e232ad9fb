"""Running the deltakit CLI from the python tests: the command's stdout, or the test fails with
its exit code and stderr."""
import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile

# The environment of tests that start mpirun: root allowed (CI runs as root), oversubscription, no
# 2 s wait in mpirun before it ends a job whose rank exited non-zero (docs/distributed.md), and
# detect_leaks=0 (used by the ASan build only): Open MPI allocates at MPI_Init what it never frees,
# in MCA components it unloads before LeakSanitizer could name them; ASan's memory-error checks
# stay on.
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_odls_base_sigkill_timeout="0",
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def run(*argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} -> {p.returncode}\n{p.stderr}")
    return p.stdout


def last_json(text):
    """The JSON object a command printed last (--json puts it on the last line)."""
    return json.loads(text.strip().splitlines()[-1])


def tiny_pair(deltakit, work, task="rev", base_steps=80, ft_steps=40):
    """A tiny base trained on the corpus and its fine-tune on a skill: (base, ft) folders in work."""
    base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
    run(deltakit, "train", "--size", "tiny", "--steps", str(base_steps), "--out", base, "--quiet")
    run(deltakit, "finetune", "--model", base, "--task", task, "--size", "tiny", "--steps", str(ft_steps), "--out", ft,
        "--quiet")
    return base, ft


@contextlib.contextmanager
def quick_experiment(name):
    """experiments/NAME/run.sh --quick, for a test called with --deltakit and --repo: yields (repo,
    the results folder), a temporary one removed after; the test fails if the run does."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--repo", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, DELTAKIT=a.deltakit, RESULTS_DIR=out)
        p = subprocess.run(["bash", os.path.join(a.repo, "experiments", name, "run.sh"), "--quick"], env=env,
                           capture_output=True, text=True, timeout=600)
        if p.returncode:
            sys.exit(f"FAIL: experiments/{name}/run.sh --quick exited {p.returncode}\n{p.stderr[-2000:]}")
        yield a.repo, out
