#!/usr/bin/env python3
"""`deltakit diff --json` families and TOTAL against numpy on a handmade pair: two layers of the same
family, one with a NaN delta. mean|δ| of a family and of TOTAL is over the finite deltas, mean|θ|
over every base entry, ‖δ‖₂ over the finite deltas."""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_independent import write_raw  # noqa: E402


def write(folder, tensors):
    os.makedirs(folder)
    header, data, off = {}, b"", 0
    for name, a in tensors.items():
        b = a.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        data, off = data + b, off + len(b)
    write_raw(os.path.join(folder, "model.safetensors"), header, data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(3)
    names = ["model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.norm.weight"]
    base = {n: rng.normal(0, 0.05, (8, 16) if "mlp" in n else (16,)) for n in names}
    ft = {n: base[n] + rng.normal(0, 0.01, base[n].shape) for n in names}
    ft[names[1]][2, 3] = np.nan  # one non-finite delta in the second layer
    with tempfile.TemporaryDirectory() as work:
        write(os.path.join(work, "b"), base)
        write(os.path.join(work, "f"), ft)
        p = subprocess.run([a.deltakit, "diff", "--base", os.path.join(work, "b"), "--finetuned", os.path.join(work, "f"),
                            "--json"], capture_output=True, text=True, check=True)
        got = json.loads(p.stdout.strip().splitlines()[-1])
    d = {n: (ft[n].astype(np.float32) - base[n].astype(np.float32)).astype(np.float64) for n in names}
    fam = {f["name"]: f for f in got["families"]}

    def check(row, members):
        deltas = np.concatenate([d[n].ravel() for n in members])
        bases = np.concatenate([base[n].astype(np.float32).ravel() for n in members])
        finite = deltas[np.isfinite(deltas)]
        want = {"mean_abs": np.abs(finite).mean(), "base_mean_abs": np.abs(bases).mean(),
                "l2": np.sqrt((finite ** 2).sum()), "numel": deltas.size}
        for k, v in want.items():
            if abs(row[k] - v) > 1e-5 * abs(v):
                sys.exit(f"FAIL: {row['name']} {k} = {row[k]}, numpy says {v}")

    check(fam["mlp.up_proj.weight"], names[:2])
    check(got["total"], names)
    print("ok: family and TOTAL statistics match numpy, the NaN delta left out of mean|δ| and ‖δ‖₂")


if __name__ == "__main__":
    main()
