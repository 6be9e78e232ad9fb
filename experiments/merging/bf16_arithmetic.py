#!/usr/bin/env python3
"""How much TIES on bf16 checkpoints depends on the arithmetic's precision: deltakit computes in
fp32 (a bf16 difference is exact there) and rounds once at the end; mergekit with `dtype:
bfloat16` casts the inputs and rounds every elementwise result to bf16 (torch's bf16 ops compute
in fp32 and round; sums over models accumulate in fp32 and round once). This script emulates that
arithmetic in numpy on a bf16 fixture with three fine-tunes and counts, per model, the entries
whose magnitude trim differs, the entries whose elected sign differs, and the output entries
that differ from deltakit's merge (in bf16 units in the last place).

  python3 experiments/merging/bf16_arithmetic.py --deltakit build/apps/deltakit [--size small]
"""
import argparse, csv, json, os, struct, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "cli"))
from merge_cli import read_st, write_st  # noqa: E402


def bf16(x):
    """Round to bf16 (nearest even), returned as float64."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32).astype(np.float64)


def ordered_bits(x):
    """bf16 values as integers that count representable values (so a difference is in ulps)."""
    b = (np.asarray(x, dtype=np.float32).view(np.uint32) >> 16).astype(np.int64)
    return np.where(b & 0x8000, -(b & 0x7FFF), b)


def trim_mask(d, density):
    """Keep the floor(density·n) largest |d| (ties to the lower index)."""
    flat = np.abs(d).reshape(-1)
    k = int(density * flat.size)
    order = np.lexsort((np.arange(flat.size), -flat))
    m = np.zeros(flat.size, dtype=bool)
    m[order[:k]] = True
    return m.reshape(d.shape)


def ties(base, fts, weights, density, rnd):
    """TIES as mergekit computes it, every elementwise result passed through rnd."""
    tvs = [rnd(f - base) for f in fts]
    masks = [trim_mask(t, density) for t in tvs]
    deltas = np.stack([rnd(t * m * w) for t, m, w in zip(tvs, masks, weights)])
    sign = np.where(rnd(deltas.sum(0)) >= 0, 1.0, -1.0)
    agree = np.sign(deltas) == sign
    mixed = rnd((deltas * agree).sum(0))
    divisor = rnd((np.array(weights).reshape(-1, *[1] * base.ndim) * agree).sum(0))
    divisor[divisor == 0] = 1
    return rnd(base + rnd(mixed / divisor)), masks, sign


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--size", default="small")
    ap.add_argument("--density", type=float, default=0.5)
    ap.add_argument("--csv", default="")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        base, ft0 = os.path.join(work, "base"), os.path.join(work, "ft0")
        subprocess.run([a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft0, "--dtype", "bf16",
                        "--size", a.size], check=True, capture_output=True)
        B, names = read_st(base)
        F0, _ = read_st(ft0)
        rng = np.random.default_rng(3)
        fts = [ft0]
        F = [F0]
        for i in (1, 2):  # fine-tunes with the fixture's delta statistics, other draws
            t = {n: bf16(B[n][1] + (F0[n][1] - B[n][1])[..., rng.permutation(B[n][1].shape[-1])]) for n in names}
            fts.append(os.path.join(work, f"ft{i}"))
            write_st(fts[-1], {n: v for n, v in t.items()}, base, dtype="BF16")
            F.append({n: ("BF16", v) for n, v in t.items()})
        weights = [1.0, 0.5, 0.3]
        cfg = os.path.join(work, "ties.yml")
        with open(cfg, "w") as f:
            f.write(f"merge_method: ties\nbase_model: {base}\nmodels:\n")
            for p, w in zip(fts, weights):
                f.write(f"  - model: {p}\n    parameters: {{weight: {w}, density: {a.density}}}\n")
            f.write("dtype: bfloat16\n")
        out = os.path.join(work, "out")
        subprocess.run([a.deltakit, "merge", cfg, "--out", out], check=True, capture_output=True)
        got, _ = read_st(out)
        tot = {"entries": 0, "trim_diff": 0, "sign_diff": 0, "out_diff": 0, "ours_vs_fp32": 0, "one_ulp": 0,
               "max_ulp": 0, "max_diff_over_mean_delta": 0}
        for n in names:
            b = B[n][1]
            if b.ndim < 2:
                continue
            fs = [Fi[n][1] for Fi in F]
            exact, m32, s32 = ties(b, fs, weights, a.density, lambda x: x)
            exact = bf16(exact)
            mk, m16, s16 = ties(b, fs, weights, a.density, bf16)
            ours = got[n][1]
            ulp = np.abs(ordered_bits(ours) - ordered_bits(mk))
            row = {"tensor": n, "entries": b.size,
                   "trim_diff": int(sum(np.count_nonzero(x != y) for x, y in zip(m32, m16))),
                   "sign_diff": int(np.count_nonzero(s32 != s16)),
                   "out_diff": int(np.count_nonzero(ours != mk)),
                   "ours_vs_fp32": int(np.count_nonzero(ours != exact)),
                   "one_ulp": int(np.count_nonzero(ulp == 1)),
                   "max_ulp": float(ulp.max()),
                   "max_diff_over_mean_delta": float(np.abs(ours - mk).max() / np.mean(np.abs(fs[0] - b)))}
            rows.append(row)
            for k in tot:
                tot[k] = max(tot[k], row[k]) if k.startswith("max") else tot[k] + row[k]
    n = tot["entries"]
    print(f"TIES density {a.density}, weights {weights}, bf16 fixture '{a.size}', {n} matrix entries:")
    print(f"  magnitude trim differs:  {tot['trim_diff'] / (3 * n):.3%} of the entries (per model)")
    print(f"  elected sign differs:    {tot['sign_diff'] / n:.3%}")
    print(f"  output differs:          {tot['out_diff'] / n:.3%} of the entries, {tot['one_ulp'] / n:.3%} by one "
          f"bf16 ulp; the largest difference is {tot['max_diff_over_mean_delta']:.2f}x the mean |delta|")
    print(f"  deltakit vs an fp32 emulation of the same formula: {tot['ours_vs_fp32']} entries differ")
    if a.csv:
        with open(a.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
