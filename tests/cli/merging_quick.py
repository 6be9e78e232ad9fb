#!/usr/bin/env python3
"""Smoke test of experiments/merging/run.sh --quick (tiny rev and caps fine-tunes trained on the spot,
four merge methods): the CSV holds the base and each fine-tune on its skill and every method on both
merged skills, accuracies in [0, 1]; the README's table carries those same figures."""
import csv, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import quick_experiment  # noqa: E402


def main():
    with quick_experiment("merging") as (_, out):
        rows = list(csv.DictReader(open(os.path.join(out, "merge.csv"))))
        got = [(r["group"], r["model"], r["skill"]) for r in rows]
        want = [("single", m, s) for s in ("rev", "caps") for m in ("base", f"ft-{s}")]
        want += [("rev+caps", m, s) for m in ("task_arithmetic w=1", "ties d=0.5", "dare_ties d=0.5", "della d=0.5 e=0.1")
                 for s in ("rev", "caps")]
        assert got == want, got
        for r in rows:
            assert 0 <= float(r["accuracy"]) <= 1, r
        readme = open(os.path.join(out, "README.md")).read()
        for r in rows:
            if r["group"] != "single":
                assert f"{100 * float(r['accuracy']):.1f}%" in readme, (r, readme)
        assert "## Reading" in readme and "Which skills merge" in readme, readme
        by = {(r["model"], r["skill"]): float(r["accuracy"]) for r in rows}
        # the fine-tunes learned their skills, the base did not: a merge's figures mean something
        assert by[("ft-rev", "rev")] >= 0.5 and by[("ft-caps", "caps")] >= 0.5, by
        assert by[("base", "rev")] <= 0.1 and by[("base", "caps")] <= 0.1, by
        print(f"ok: 4 merges of rev+caps measured (fine-tunes {by[('ft-rev', 'rev')]:.2f}/{by[('ft-caps', 'caps')]:.2f}); " +
              ", ".join(f"{m} {by[(m, 'rev')]:.2f}/{by[(m, 'caps')]:.2f}" for m in ("task_arithmetic w=1", "ties d=0.5")))


if __name__ == "__main__":
    main()
