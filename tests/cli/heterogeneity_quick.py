#!/usr/bin/env python3
"""Smoke test of experiments/heterogeneity/run.sh --quick: one row per (model, perturbation,
family) plus the whole model, shares that grow with the top fraction and stay in [0, 1], and a
heterogeneity score >= 1 (a mean of the top 1% over the largest of the rest)."""
import csv, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import quick_experiment  # noqa: E402


def main():
    with quick_experiment("heterogeneity") as (_, out):
        rows = list(csv.DictReader(open(os.path.join(out, "impact.csv"))))
        keys = {(r["model"], r["perturbation"]) for r in rows}
        assert keys == {("base", "base q4"), ("rev", "delta"), ("rev", "bitdelta error")}, keys
        assert len(rows) == 3 * 8, len(rows)  # 7 projection families + ALL
        for r in rows:
            s = [float(r[k]) for k in ("share_top_0.1pct", "share_top_1pct", "share_top_10pct")]
            assert 0 <= s[0] <= s[1] <= s[2] <= 1.0 + 1e-9 and s[1] >= 0.01 - 1e-9, r
            assert float(r["heterogeneity"]) >= 1.0, r
        print(f"ok: {len(rows)} impact rows, whole-model top-1% shares " +
              ", ".join(f"{r['perturbation']} {float(r['share_top_1pct']):.2f}" for r in rows if r["family"] == "ALL"))


if __name__ == "__main__":
    main()
