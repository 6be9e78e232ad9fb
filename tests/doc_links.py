#!/usr/bin/env python3
"""The project explains itself: every link in README.md, docs/, bench/ and experiments/ pages
resolves to a file inside the repository (no web address, no path that leaves the checkout), and
the README stays the short front door (at most 10 KB)."""
import argparse
import os
import re
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--repo", required=True)
repo = os.path.realpath(ap.parse_args().repo)
pages = [os.path.join(repo, "README.md")]
for top in ("docs", "bench", "experiments"):
    for root, _, names in os.walk(os.path.join(repo, top)):
        pages += [os.path.join(root, n) for n in names if n.endswith(".md")]
bad, links = [], 0
for page in pages:
    text = open(page, encoding="utf-8").read()
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        links += 1
        target = m.group(1).split("#")[0]
        if re.match(r"[a-z]+:", m.group(1)):
            bad.append(f"{os.path.relpath(page, repo)}: {m.group(1)} leaves the repository")
            continue
        if not target:
            continue
        path = os.path.realpath(os.path.join(os.path.dirname(page), target))
        if not path.startswith(repo + os.sep):
            bad.append(f"{os.path.relpath(page, repo)}: {m.group(1)} points outside the repository")
        elif not os.path.exists(path):
            bad.append(f"{os.path.relpath(page, repo)}: {m.group(1)} does not exist")
size = os.path.getsize(os.path.join(repo, "README.md"))
if size > 10 * 1024:
    bad.append(f"README.md is {size} bytes, over 10 KB: details belong in docs/")
for b in bad:
    print(b)
print(f"{len(pages)} pages, {links} links, README {size} bytes, {len(bad)} problems")
sys.exit(1 if bad else 0)
