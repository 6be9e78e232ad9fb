"""What the fault-injection sweeps share (fault_syscalls.py, fault_kill.py): comparing outputs,
removing them, and the inputs of the three jobs (a base, its fine-tune, an adapter, a merge config)."""
import filecmp
import os
import shutil

from cli_run import run


def tree_equal(a, b):
    """Same files (names and bytes) under two paths: a file or a folder."""
    if os.path.isfile(a) or os.path.isfile(b):
        return os.path.isfile(a) and os.path.isfile(b) and filecmp.cmp(a, b, shallow=False)
    if not (os.path.isdir(a) and os.path.isdir(b)) or sorted(os.listdir(a)) != sorted(os.listdir(b)):
        return False
    return all(tree_equal(os.path.join(a, n), os.path.join(b, n)) for n in os.listdir(a))


def leftovers(folder):
    """Temporaries and journals (".out.h5.deltakit-compress", ".x.deltakit-tmp-...") in `folder`."""
    return sorted(f for f in os.listdir(folder) if ".deltakit-" in f)


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


class JobInputs:
    """A fixture (sharded at `shard`), a dare adapter of it, and a TIES config over both."""

    def __init__(self, deltakit, work, size, shard):
        self.base, self.ft = os.path.join(work, "base"), os.path.join(work, "ft")
        run(deltakit, "make-fixture", "--out-base", self.base, "--out-finetuned", self.ft, "--size", size,
            "--max-shard-size", shard)
        self.adapter = os.path.join(work, "in.h5")
        run(deltakit, "compress", "--base", self.base, "--finetuned", self.ft, "--recipe", "dare:p=0.5",
            "--out", self.adapter, "--quiet")
        self.merge_yml = os.path.join(work, "merge.yml")
        with open(self.merge_yml, "w") as f:
            f.write(f"merge_method: ties\nbase_model: {self.base}\nmodels:\n"
                    f"  - {{model: {self.ft}, parameters: {{weight: 1, density: 0.5}}}}\n"
                    f"  - {{model: {self.adapter}, parameters: {{weight: 0.5, density: 0.5}}}}\n")
