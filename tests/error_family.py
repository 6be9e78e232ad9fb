#!/usr/bin/env python3
"""One error family: every failure a user can cause is a deltakit::Error with a code (exit 1, or
2 for usage), never a bare standard exception that main() can only report as an internal error
(exit 3). std::logic_error stays for programmer errors. Scans src/, apps/, formats/ and mpi/."""
import argparse
import os
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--repo", required=True)
repo = ap.parse_args().repo
pattern = re.compile(r"throw\s+std::(invalid_argument|runtime_error|out_of_range|domain_error|length_error|range_error)\b")
found, files = [], 0
for top in ("src", "apps", "formats", "mpi"):
    for root, _, names in os.walk(os.path.join(repo, top)):
        for n in names:
            if not n.endswith((".h", ".cpp", ".cu", ".cuh")):
                continue
            files += 1
            path = os.path.join(root, n)
            for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
                if pattern.search(line.split("//")[0]):
                    found.append(f"{os.path.relpath(path, repo)}:{lineno}: {line.strip()}")
for f in found:
    print(f)
print(f"{files} files scanned, {len(found)} standard exceptions thrown")
sys.exit(1 if found or files < 50 else 0)
