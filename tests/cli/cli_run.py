"""Running the deltakit CLI from the python tests: the command's stdout, or the test fails with
its exit code and stderr."""
import os
import subprocess
import sys

# The environment of tests that start mpirun: root allowed (CI runs as root), oversubscription, and
# detect_leaks=0 (used by the ASan build only): Open MPI allocates at MPI_Init what it never frees,
# in MCA components it unloads before LeakSanitizer could name them; ASan's memory-error checks
# stay on.
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1",
               ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0")


def run(*argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} -> {p.returncode}\n{p.stderr}")
    return p.stdout


def tiny_pair(deltakit, work, task="rev", base_steps=80, ft_steps=40):
    """A tiny base trained on the corpus and its fine-tune on a skill: (base, ft) folders in work."""
    base, ft = os.path.join(work, "base"), os.path.join(work, "ft")
    run(deltakit, "train", "--size", "tiny", "--steps", str(base_steps), "--out", base, "--quiet")
    run(deltakit, "finetune", "--model", base, "--task", task, "--size", "tiny", "--steps", str(ft_steps), "--out", ft,
        "--quiet")
    return base, ft


def run_experiment_quick(repo, name, deltakit, out):
    """experiments/NAME/run.sh --quick with its results in `out`; the test fails if it does."""
    env = dict(os.environ, DELTAKIT=deltakit, RESULTS_DIR=out)
    p = subprocess.run(["bash", os.path.join(repo, "experiments", name, "run.sh"), "--quick"], env=env,
                       capture_output=True, text=True, timeout=600)
    if p.returncode:
        sys.exit(f"FAIL: experiments/{name}/run.sh --quick exited {p.returncode}\n{p.stderr[-2000:]}")
