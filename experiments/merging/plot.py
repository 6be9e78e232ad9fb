#!/usr/bin/env python3
"""Accuracy against density for ties and dare_ties, one panel per merged group, from
results/merging/merge.csv (experiments/merging/run.sh): results/merging/density.png by gnuplot."""
import csv, os, shutil, subprocess, sys


def main():
    csv_path = sys.argv[1]
    out = os.path.dirname(os.path.abspath(csv_path))
    if not shutil.which("gnuplot"):
        print("gnuplot not installed: no plot")
        return
    rows = list(csv.DictReader(open(csv_path)))
    groups = [g for g in dict.fromkeys(r["group"] for r in rows) if g != "single"]
    blocks = []
    for g in groups:
        for method in ("ties", "dare_ties"):
            pts = {}
            for r in rows:
                if r["group"] == g and r["model"].startswith(method + " d="):
                    d = float(r["model"].split("d=")[1])
                    pts.setdefault(d, []).append(float(r["accuracy"]))
            lines = [f"{d} {100 * sum(v) / len(v):.2f}" for d, v in sorted(pts.items())]
            blocks.append((g, method, lines))
    with open(os.path.join(out, "density.dat"), "w") as f:
        for _, _, lines in blocks:
            f.write("\n".join(lines) + "\n\n\n")
    script = ["set terminal pngcairo size 1000,700 font 'sans,10' noenhanced", "set output 'density.png'",
              f"set multiplot layout {(len(groups) + 1) // 2},2 title 'Mean exact match of the merged skills against density'",
              "set grid", "set yrange [0:100]", "set xlabel 'density'", "set ylabel 'accuracy (%)'"]
    for gi, g in enumerate(groups):
        script.append(f"set title '{g}'")
        script.append(f"plot 'density.dat' index {2 * gi} with linespoints title 'ties', "
                      f"'' index {2 * gi + 1} with linespoints title 'dare_ties'")
    script.append("unset multiplot")
    subprocess.run(["gnuplot"], input="\n".join(script) + "\n", text=True, cwd=out, check=True)
    print(f"wrote {os.path.join(out, 'density.png')}")


if __name__ == "__main__":
    main()
