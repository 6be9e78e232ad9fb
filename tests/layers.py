#!/usr/bin/env python3
"""The layer rules, checked on the sources: every #include "..." in src/, formats/, mpi/ and apps/
names a header of its own layer or of one its layer links (directly or through the layers below),
as declared by the deltakit_layer(NAME DIR LOWER...) lines of CMakeLists.txt; and those arrows
form no cycle. The link side of the same rule is tests/layer_check (each layer linked alone)."""
import argparse
import os
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--repo", required=True)
repo = ap.parse_args().repo

cmake = open(os.path.join(repo, "CMakeLists.txt")).read()
layers = {}  # name -> (dir, [lower layers])
for m in re.finditer(r"^deltakit_layer\(([^)]*)\)", cmake, re.M):
    name, d, *deps = m.group(1).split()
    layers[name] = (d, deps)
# mpi/ builds its own library (the MPI or the serial Comm) over core; apps/ may use every layer
mpi_cmake = open(os.path.join(repo, "mpi", "CMakeLists.txt")).read()
assert "target_link_libraries(deltakit_mpi PUBLIC deltakit_core)" in mpi_cmake, "mpi/ must link only core"
layers["mpi"] = ("mpi", ["core"])
layers["apps"] = ("apps", [n for n in layers])
if len(layers) < 8:
    sys.exit(f"found only {len(layers)} layers in CMakeLists.txt")

# the arrows must point downward only: a cycle would make "below" meaningless
state = {}
def visit(n, path):
    if state.get(n) == "done":
        return
    if state.get(n) == "open":
        sys.exit("layer cycle: " + " -> ".join(path + [n]))
    state[n] = "open"
    for d in layers[n][1]:
        if d not in layers:
            sys.exit(f"layer {n} links unknown layer {d}")
        visit(d, path + [n])
    state[n] = "done"
for n in layers:
    visit(n, [])

def below(n, seen=None):
    seen = set() if seen is None else seen
    for d in layers[n][1]:
        if d not in seen:
            seen.add(d)
            below(d, seen)
    return seen

dir_to_layer = {d: n for n, (d, _) in layers.items()}
bad, checked = [], 0
for n, (d, _) in layers.items():
    allowed = below(n) | {n}
    for root, _, files in os.walk(os.path.join(repo, d)):
        for f in files:
            if not f.endswith((".h", ".cpp", ".cu", ".cuh")):
                continue
            path = os.path.join(root, f)
            for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
                m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
                if not m:
                    continue
                checked += 1
                target = dir_to_layer.get(os.path.dirname(m.group(1)))
                if target is None:
                    bad.append(f"{os.path.relpath(path, repo)}:{lineno}: includes {m.group(1)}, in no layer")
                elif target not in allowed:
                    bad.append(f"{os.path.relpath(path, repo)}:{lineno}: layer {n} includes {m.group(1)} "
                               f"from layer {target}, which is not below it")
for b in bad:
    print(b)
print(f"{len(layers)} layers, {checked} includes checked, {len(bad)} upward")
sys.exit(1 if bad else 0)
