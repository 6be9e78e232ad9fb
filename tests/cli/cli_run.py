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
