#!/usr/bin/env python3
"""The merging experiment's plot and README from results/merging/merge.csv (experiments/merging/run.sh):
accuracy against density for ties and dare_ties, one panel per merged group (density.png, gnuplot),
and a README with the table and a reading computed from the same numbers."""
import argparse, csv, json, os, statistics, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "cli"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from results_page import gnuplot, run_line  # noqa: E402

SKILLS = ["rev", "sort", "caps", "dup"]


def density(label):
    return float(label.split("d=")[1].split()[0]) if "d=" in label else None


def plot(rows, groups, out):
    """density.png: mean accuracy of a group's skills against density, ties and dare_ties."""
    blocks = []
    for g in groups:
        for method in ("ties", "dare_ties"):
            pts = {}
            for r in rows:
                if r["group"] == g and r["model"].startswith(method + " d="):
                    pts.setdefault(density(r["model"]), []).append(float(r["accuracy"]))
            blocks.append([f"{d} {100 * sum(v) / len(v):.2f}" for d, v in sorted(pts.items())])
    with open(os.path.join(out, "density.dat"), "w") as f:
        for lines in blocks:
            f.write("\n".join(lines) + "\n\n\n")
    script = ["set terminal pngcairo size 1000,700 font 'sans,10' noenhanced", "set output 'density.png'",
              f"set multiplot layout {(len(groups) + 1) // 2},2 title 'Mean exact match of the merged skills against density'",
              "set grid", "set yrange [0:100]", "set xlabel 'density'", "set ylabel 'accuracy (%)'"]
    for gi, g in enumerate(groups):
        script.append(f"set title '{g}'")
        script.append(f"plot 'density.dat' index {2 * gi} with linespoints title 'ties', "
                      f"'' index {2 * gi + 1} with linespoints title 'dare_ties'")
    script.append("unset multiplot")
    return gnuplot("\n".join(script) + "\n", out)


def delta_scale(models, skills):
    """mean|δ| / mean|θ| per skill over the projection matrices, when the models are at hand."""
    out = {}
    if not models or not os.path.exists(os.path.join(models, "base", "model.safetensors")):
        return out
    import numpy as np
    from model_numpy import read_safetensors
    base = read_safetensors(os.path.join(models, "base", "model.safetensors"))
    for s in skills:
        path = os.path.join(models, f"ft-{s}", "model.safetensors")
        if os.path.exists(path):
            ft = read_safetensors(path)
            names = [n for n in base if n.endswith("_proj.weight")]
            out[s] = (sum(float(np.abs(ft[n] - base[n]).sum()) for n in names) /
                      sum(float(np.abs(base[n]).sum()) for n in names))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", required=True)
    ap.add_argument("--readme", required=True)
    ap.add_argument("--models")
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--samples", type=int, default=0)
    ap.add_argument("--quick", type=int, default=0)
    ap.add_argument("--command", default="experiments/merging/run.sh", help="the command line, for the page")
    a = ap.parse_args()
    out = os.path.dirname(os.path.abspath(a.csv))
    rows = list(csv.DictReader(open(a.csv)))
    if not rows:
        sys.exit(f"{a.csv}: no rows")
    acc = {}
    for r in rows:
        acc.setdefault((r["group"], r["model"]), {})[r["skill"]] = float(r["accuracy"])
    groups = [g for g in dict.fromkeys(r["group"] for r in rows) if g != "single"]
    methods = list(dict.fromkeys(r["model"] for r in rows if r["group"] != "single"))
    skills = [s for s in SKILLS if ("single", f"ft-{s}") in acc]
    own = {s: acc[("single", f"ft-{s}")][s] for s in skills}
    mean = lambda g, m: statistics.mean(acc[(g, m)].values())
    plotted = plot(rows, groups, out)

    # the table
    T = ["| merged | method | " + " | ".join(skills) + " |", "|---|---|" + "---|" * len(skills)]
    for s in skills:
        T.append(f"| single | ft-{s} | " + " | ".join(f"{100 * own[s]:.1f}%" if t == s else "" for t in skills) + " |")
    for g in groups:
        for m in methods:
            if (g, m) in acc:
                T.append(f"| {g} | {m} | " + " | ".join(f"{100 * acc[(g, m)][s]:.1f}%" if s in acc[(g, m)] else ""
                                                         for s in skills) + " |")
    base = acc.get(("single", "base"), {})
    T.append("| - | base | " + " | ".join(f"{100 * base[s]:.1f}%" if s in base else "" for s in skills) + " |")

    # the reading, from the same numbers
    def fmt(g, m):
        return " / ".join(f"{100 * acc[(g, m)][s]:.0f}%" for s in g.split("+"))
    R = []
    pairs = [g for g in groups if g.count("+") == 1]
    verdicts = []
    for g in groups:
        best = max((m for m in methods if (g, m) in acc), key=lambda m: mean(g, m))
        own_mean = statistics.mean(own[s] for s in g.split("+"))
        verdicts.append((g, best, own_mean > 0 and mean(g, best) >= 0.85 * own_mean))
    well = [v for v in verdicts if v[2]]
    bad = [v for v in verdicts if not v[2]]
    R.append("- **Which skills merge.** " + (
        "; ".join(f"{g} merges well: best {m} keeps {fmt(g, m)}" for g, m, _ in well) + ". " if well else
        "No group keeps 85% of its fine-tunes' own accuracy under any method. ") + (
        "; ".join(f"{g} interferes: the best, {m}, reaches {fmt(g, m)}" for g, m, _ in bad) + "." if bad else ""))
    ta = next((m for m in methods if m.startswith("task_arithmetic") and "w=1" in m and "w=1." not in m), None)
    sparse = [m for m in methods if m.startswith("ties") or m.startswith("della")]
    if ta and sparse and pairs:
        beats = [g for g in pairs if max(mean(g, m) for m in sparse if (g, m) in acc) > mean(g, ta)]
        R.append(f"- **Sparsify before the mix.** The best of ties (any density) and della beats {ta} in "
                 f"{len(beats)} of {len(pairs)} pairs" + (f" ({', '.join(beats)})" if beats else "") + ".")
    dt5 = next((m for m in methods if m == "dare_ties d=0.5"), None)
    if ta and dt5:
        R.append("- **DARE-TIES at density 0.5** (mergekit's L1 rescale) against task arithmetic at weight 1: " +
                 "; ".join(f"{g} {100 * mean(g, dt5):.0f}% vs {100 * mean(g, ta):.0f}%" for g in groups) +
                 " (mean accuracy over the group's skills).")
    ties_d = [m for m in methods if m.startswith("ties d=")]
    dare_d = [m for m in methods if m.startswith("dare_ties d=")]
    if len(ties_d) > 1 and len(dare_d) > 1:
        D = []
        for g in groups:
            tp = sorted((density(m), mean(g, m)) for m in ties_d)
            dp = sorted((density(m), mean(g, m)) for m in dare_d)
            best_t = max(tp, key=lambda t: t[1])
            rising = dp[-1][1] > dp[0][1] + 0.05 and all(b[1] >= a[1] - 0.03 for a, b in zip(dp, dp[1:]))
            above = sum(t[1] >= d[1] for t, d in zip(tp, dp))
            D.append(f"{g}: TIES peaks at density {best_t[0]:g} ({100 * best_t[1]:.0f}%; {100 * tp[0][1]:.0f}% at "
                     f"{tp[0][0]:g}), DARE-TIES goes {100 * dp[0][1]:.0f}% → {100 * dp[-1][1]:.0f}% from {dp[0][0]:g} "
                     f"to {dp[-1][0]:g}" + (" rising steadily" if rising else "") +
                     f", TIES ≥ DARE-TIES at {above} of {len(tp)} densities")
        R.append("- **Across densities** (mean accuracy over the group's skills). " + "; ".join(D) + ".")
    scale = delta_scale(a.models, skills)
    cfg_path = os.path.join(a.models or "", "base", "config.json")
    params = ""
    if a.models and os.path.exists(cfg_path):
        c = json.load(open(cfg_path))
        params = (f"{c['num_hidden_layers']} layers of width {c['hidden_size']} "
                  f"(MLP {c['intermediate_size']}, vocabulary {c['vocab_size']})")
    R.append("- **Context.** These are small models" + (f", {params}" if params else "") +
             ", whose skill fine-tunes move every weight" +
             (" (mean|δ| / mean|θ| over the projections: " + ", ".join(f"{s} {v:.3f}" for s, v in scale.items()) + ")"
              if scale else "") +
             ", trained on their skill with corpus replay and no shared instruction data. Our reading, not a "
             "measurement: skills that rewrite the same letters (rev, sort) or recode them (caps) compete for the "
             "same weights at this size.")

    L = ["# Merging the embedded skill fine-tunes" + (" (quick run)" if a.quick else ""), "",
         "`experiments/merging/run.sh [--quick] [DEMO_DIR] [SAMPLES]` merges the demo's skill fine-tunes in pairs and "
         "all four together with task_arithmetic, ties and dare_ties at densities 0.1–0.9, and della, and measures "
         "exact-match accuracy (held-out prompts) of each merge on each skill it merged. `analyze.py` writes this page "
         "from the CSV. Editing results on the same models sit beside these in "
         "[experiments/riemann](../riemann/README.md).", "",
         run_line(a.command, a.seconds) + "; "
         f"{len(groups) * len(methods)} merges, {a.samples} prompts per skill. Data: "
         f"[merge.csv](../../results/merging/{'quick/' if a.quick else ''}merge.csv).", ""] + T + ["", "## Reading", ""] + R
    if plotted:
        L += ["", f"![density.png](../../results/merging/{'quick/' if a.quick else ''}density.png)"]
    with open(a.readme, "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(R))


if __name__ == "__main__":
    main()
