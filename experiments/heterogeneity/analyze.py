#!/usr/bin/env python3
"""Impact concentration (CherryQ's heterogeneity) from Fisher files and checkpoints, numpy only:
writes results/heterogeneity/impact.csv and the experiment's README (see run.sh for the setup)."""
import argparse, csv, os, re, sys

import numpy as np

# the tests' numpy reader of F32 safetensors
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "cli"))
from model_numpy import read_safetensors  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from results_page import gnuplot, run_line  # noqa: E402


FRACTIONS = [10 ** (e / 4) for e in range(-16, 1)]  # 1e-4 ... 1


def family(name):
    return re.sub(r"^model\.layers\.\d+\.", "", name)


def q4(w, group=128, bits=4):
    """CherryQ's quantizer (algorithms.md §3): contiguous groups, s = (max|w| + 1e-6) / 2^(b-1),
    q = round(clamp(w/s, ±(2^(b-1) - 0.01)) - 0.5), w^ = (q + 0.5) s."""
    flat = w.reshape(-1)
    pad = (-len(flat)) % group
    g = np.concatenate([flat, np.zeros(pad)]).reshape(-1, group)
    half = 2 ** (bits - 1)
    s = (np.abs(g).max(1, keepdims=True) + 1e-6) / half
    q = np.round(np.clip(g / s, -(half - 0.01), half - 0.01) - 0.5)
    return ((q + 0.5) * s).reshape(-1)[:len(flat)].reshape(w.shape)


def bitdelta(d):
    a = np.abs(d).mean()
    return np.where(d >= 0, a, -a)


def shares(impact):
    """Share of the total impact in the top 0.1%, 1%, 10% of entries."""
    v = np.sort(impact.reshape(-1))[::-1]
    total = v.sum()
    out = []
    for frac in (0.001, 0.01, 0.1):
        k = max(1, int(np.ceil(frac * len(v))))
        out.append(v[:k].sum() / total if total > 0 else 0.0)
    return out


def heterogeneity(f):
    v = np.sort(f.reshape(-1))[::-1]
    k = max(1, int(np.ceil(0.01 * len(v))))
    rest = v[k:].max() if len(v) > k else 0.0
    return v[:k].mean() / rest if rest > 0 else float("inf")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--fisher", required=True)
    ap.add_argument("--skills", nargs="+", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--quick", type=int, default=0)
    ap.add_argument("--command", default="experiments/heterogeneity/run.sh", help="the command line, for the page")
    a = ap.parse_args()
    base = read_safetensors(os.path.join(a.models, "base", "model.safetensors"))
    fb = read_safetensors(os.path.join(a.fisher, "fisher-base.st"))
    rows = []  # skill, what, family, top0.1, top1, top10, heterogeneity
    def add(skill, what, tensors):
        fams = {}
        for name, (f, e) in tensors.items():
            fams.setdefault(family(name), []).append((f, e))
        allf = np.concatenate([np.concatenate([f.reshape(-1) for f, _ in v]) for v in fams.values()])
        alli = np.concatenate([np.concatenate([(0.5 * f * e * e).reshape(-1) for f, e in v]) for v in fams.values()])
        v_all = np.sort(alli)[::-1]
        cum = np.cumsum(v_all) / max(v_all.sum(), 1e-300)
        curves[(skill, what)] = [cum[max(0, int(np.ceil(f * len(v_all))) - 1)] for f in FRACTIONS]
        for fam, v in list(fams.items()) + [("ALL", None)]:
            if v is None:
                f, imp = allf, alli
            else:
                f = np.concatenate([x.reshape(-1) for x, _ in v])
                imp = np.concatenate([(0.5 * x * e * e).reshape(-1) for x, e in v])
            rows.append([skill, what, fam] + shares(imp) + [heterogeneity(f)])
    curves = {}  # (model, perturbation) -> share of the impact in the top f, f on FRACTIONS
    proj = [n for n in base if n.endswith("_proj.weight")]
    add("base", "base q4", {n: (fb[n], base[n] - q4(base[n])) for n in proj})
    for skill in a.skills:
        ft = read_safetensors(os.path.join(a.models, f"ft-{skill}", "model.safetensors"))
        f = read_safetensors(os.path.join(a.fisher, f"fisher-{skill}.st"))
        add(skill, "delta", {n: (f[n], ft[n] - base[n]) for n in proj})
        add(skill, "bitdelta error", {n: (f[n], (ft[n] - base[n]) - bitdelta(ft[n] - base[n])) for n in proj})
    os.makedirs(a.results, exist_ok=True)
    with open(os.path.join(a.results, "impact.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "perturbation", "family", "share_top_0.1pct", "share_top_1pct", "share_top_10pct",
                    "heterogeneity"])
        for r in rows:
            w.writerow(r[:3] + [f"{x:.4f}" for x in r[3:6]] + [f"{r[6]:.4g}"])
    # the concentration curves as a plot (gnuplot, where installed)
    with open(os.path.join(a.results, "concentration.dat"), "w") as fh:
        keys = list(curves)
        fh.write("# top_fraction " + " ".join(f"{m}/{p.replace(' ', '_')}" for m, p in keys) + "\n")
        for i, f in enumerate(FRACTIONS):
            fh.write(f"{f:.6g} " + " ".join(f"{curves[k][i]:.6g}" for k in keys) + " " + f"{f:.6g}\n")
    cols = ", ".join(f"'concentration.dat' using 1:{i + 2} with lines lw 2 title '{m}: {p}'" for i, (m, p) in enumerate(keys))
    script = ("set terminal pngcairo size 900,560 font 'sans,11'\nset output 'concentration.png'\nset grid\n"
              "set key outside right\nset logscale x\nset xlabel 'top fraction of entries'\n"
              "set ylabel 'share of the total impact'\nset title 'Impact concentration: 1/2 F e^2, sorted'\n"
              f"plot {cols}, 'concentration.dat' using 1:{len(keys) + 2} with lines dt 2 lc 'black' title 'uniform'\n")
    plot = "concentration.png" if gnuplot(script, a.results) else None
    L = ["# Parameter heterogeneity" + (" (quick run)" if a.quick else ""), "",
         "CherryQ (algorithms.md §3) finds that a few parameters carry most of the loss impact of a perturbation. Here, on "
         "deltakit's own models, the impact of perturbing weight i by e_i is ½·F_ii·e_i², F the diagonal empirical "
         "Fisher from `deltakit importance --kind fisher`. The impact of the whole delta (e = δ) and of BitDelta's "
         "error (e = δ − δ̂) uses F at each fine-tune on its skill; the base under CherryQ's 4-bit group-128 "
         "quantizer uses F at the base on corpus text. The q/k/v/o/gate/up/down projections are counted. "
         "*heterogeneity* is CherryQ's score, mean(F of the top 1%) / max(F of the other 99%), per family.", "",
         run_line(a.command, a.seconds) + ". "
         "Data: [impact.csv](../../results/heterogeneity/impact.csv).", "",
         "## Share of the total impact carried by the top entries, whole model", "",
         "| model | perturbation | top 0.1% | top 1% | top 10% | heterogeneity |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r[2] == "ALL":
            L.append(f"| {r[0]} | {r[1]} | {100 * r[3]:.1f}% | {100 * r[4]:.1f}% | {100 * r[5]:.1f}% | {r[6]:.3g} |")
    top1 = [r[4] for r in rows if r[2] == "ALL"]
    hs = [r[6] for r in rows if r[2] != "ALL"]
    if plot:
        L += ["", f"![{plot}](../../results/heterogeneity/{'quick/' if a.quick else ''}{plot})"]
    L += ["", "## Reading", "",
          f"- Uniform impact would put 0.1%, 1% and 10% of it in those entries. Measured, the top 1% carries "
          f"{100 * min(top1):.0f}–{100 * max(top1):.0f}% of the impact across models and perturbations: "
          + ("heterogeneous, as CherryQ reports for LLaMA-2." if min(top1) > 0.05 else "close to uniform here, unlike CherryQ's report."),
          f"- CherryQ's heterogeneity score (≥ 1 by construction) ranges {min(hs):.3g}–{max(hs):.3g} over the "
          "families below: the top 1% of Fisher values are on average that many times the 99th percentile.", "",
          "## Per family", "", "| model | perturbation | family | top 0.1% | top 1% | top 10% | heterogeneity |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r[2] != "ALL":
            L.append(f"| {r[0]} | {r[1]} | {r[2]} | {100 * r[3]:.1f}% | {100 * r[4]:.1f}% | {100 * r[5]:.1f}% | {r[6]:.3g} |")
    open(a.readme, "w").write("\n".join(L) + "\n")
    print("\n".join(L[:20]))


if __name__ == "__main__":
    main()
