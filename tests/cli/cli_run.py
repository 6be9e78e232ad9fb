"""Running the deltakit CLI from the python tests: the command's stdout, or the test fails with
its exit code and stderr."""
import subprocess
import sys


def run(*argv):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} -> {p.returncode}\n{p.stderr}")
    return p.stdout
