#!/usr/bin/env python3
"""Adapter size per recipe on a Llama-shaped bf16 fixture: linear layers (*_proj.weight) coded by
the recipe, everything else raw. Writes results.csv beside this script.
    python3 run.py --deltakit build/apps/deltakit [--size medium] [--work /tmp/codec_sizes]"""
import argparse
import csv
import json
import os
import subprocess

RECIPES = ["raw", "bitdelta", "dare:p=0.9", "dare:p=0.99", "bitdelta + cherry:frac=0.01", "quant:bits=4",
           "lowrank:rank=16", "bitdelta:scale=row", "dare:p=0.9 > bitdelta:scale=row"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--work", default="/tmp/codec_sizes")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    base, ft = os.path.join(a.work, "base"), os.path.join(a.work, "ft")
    subprocess.run([a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", a.size,
                    "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    ft_bytes = sum(os.path.getsize(os.path.join(ft, f)) for f in os.listdir(ft) if f.endswith(".safetensors"))
    rows = []
    for r in RECIPES:
        out = os.path.join(a.work, "a.h5")
        subprocess.run([a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", r, "--only",
                        "*_proj.weight", "--out", out, "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        info = json.loads(subprocess.run([a.deltakit, "inspect", out, "--json"], check=True,
                                         capture_output=True, text=True).stdout)
        lin = [t for t in info["tensors"] if t["name"].endswith("_proj.weight")]
        lin_stored = sum(t["stored_bytes"] for t in lin)
        lin_bf16 = sum(2 * t["stored_bytes"] * t["ratio_vs_bf16_delta"] / 2 for t in lin)
        lin_err = max(t["rel_error"] for t in lin)
        rows.append({"recipe": r, "file_bytes": info["file_bytes"], "finetune_bf16_bytes": ft_bytes,
                     "x_smaller_than_finetune": round(ft_bytes / info["file_bytes"], 2),
                     "linear_stored_bytes": lin_stored, "linear_bf16_delta_bytes": int(lin_bf16),
                     "linear_x_smaller": round(lin_bf16 / lin_stored, 2), "linear_max_rel_error": round(lin_err, 4)})
        print(rows[-1])
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
