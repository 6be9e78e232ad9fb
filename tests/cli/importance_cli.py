#!/usr/bin/env python3
"""`deltakit importance` end to end on a tiny trained base and its fine-tune:
  * act: E[x_c^2] of every linear input against numpy's forward (model_numpy.logits_of) over the
    one calibration window a token file of seq_len + 1 tokens allows;
  * fisher: one non-negative value per weight under each weight's name and shape;
  * the cherry codec reads both files: with importance=fisher the entries that come back exact
    after apply are, row by row, the top ceil(frac * cols) of F_i * (delta_i - alpha sign delta_i)^2
    (alpha = mean|delta| of the matrix), as numpy ranks them — and not the magnitude-only choice."""
import argparse, json, math, os, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import run, tiny_pair  # noqa: E402
from model_numpy import logits_of, read_safetensors  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    dk = a.deltakit
    with tempfile.TemporaryDirectory() as w:
        base, ft = tiny_pair(dk, w, "add", 60, 20)
        cfg = json.load(open(os.path.join(ft, "config.json")))
        W = read_safetensors(os.path.join(ft, "model.safetensors"))

        # act over one window: tokens 0..T-1 as inputs
        T = 24
        ids = [256] + list(b"The shai kounr tral some doufs. add 12+34=046\n")[:T]
        tokens = os.path.join(w, "calib.u32")
        np.array(ids, dtype="<u4").tofile(tokens)
        act = os.path.join(w, "act.safetensors")
        run(dk, "importance", "--model", ft, "--kind", "act", "--calibration", "tokens:" + tokens, "--samples", "3",
            "--seq-len", str(T), "--out", act)
        got = read_safetensors(act)
        inputs = {}
        logits_of(W, cfg, ids[:T], inputs)
        assert set(got) == set(inputs), (sorted(got), sorted(inputs))
        worst = 0.0
        for name, x in inputs.items():
            want = (x * x).mean(0)
            assert got[name].shape == want.shape, (name, got[name].shape, want.shape)
            worst = max(worst, float(np.max(np.abs(got[name] - want) / np.maximum(want, 1e-3))))
        print(f"act: {len(got)} tensors, worst relative difference from numpy {worst:.2e}")
        if worst > 1e-4:
            sys.exit("FAIL: act statistics differ from numpy's direct computation")

        # fisher: every weight, its shape, finite and >= 0, not all zero
        fisher = os.path.join(w, "fisher.safetensors")
        run(dk, "importance", "--model", ft, "--kind", "fisher", "--calibration", "skill:add", "--samples", "16",
            "--seq-len", "32", "--out", fisher)
        F = read_safetensors(fisher)
        assert set(F) == set(W), sorted(set(F) ^ set(W))
        for name, f in F.items():
            assert f.shape == W[name].shape and np.all(np.isfinite(f)) and np.all(f >= 0), name
        assert all(F[n].max() > 0 for n in F if "proj" in n), "a projection with zero Fisher everywhere"

        # the cherry codec reads the files
        B = read_safetensors(os.path.join(base, "model.safetensors"))
        frac = 0.05
        for imp in ("fisher:" + fisher, "act:" + act, "magnitude"):
            adapter, out = os.path.join(w, "a.h5"), os.path.join(w, "applied")
            run(dk, "compress", "--base", base, "--finetuned", ft, "--recipe",
                f"bitdelta + cherry:frac={frac},importance={imp}", "--only", "*proj*", "--out", adapter, "--overwrite")
            if imp == "magnitude":
                break
            run(dk, "apply", "--base", base, "--adapter", adapter, "--out", out, "--overwrite")
            A = read_safetensors(os.path.join(out, "model.safetensors"))
            if not imp.startswith("fisher"):
                continue
            rows_checked = rows_same = differs_from_magnitude = 0
            for name in (n for n in W if "proj" in n):
                d = (W[name] - B[name]).astype(np.float32)
                alpha = np.float32(np.abs(d.astype(np.float64)).mean())
                recon = np.where(d >= 0, alpha, -alpha).astype(np.float32)
                err = (d - recon) ** 2
                score, plain = F[name].astype(np.float32) * err, err
                k = math.ceil(frac * d.shape[1])
                exact = np.abs(A[name] - W[name]) <= 1e-6 * np.abs(W[name]) + 1e-9
                for r in range(d.shape[0]):
                    want = set(np.argsort(-score[r], kind="stable")[:k])
                    mag = set(np.argsort(-plain[r], kind="stable")[:k])
                    have = set(np.flatnonzero(exact[r]))
                    rows_checked += 1
                    rows_same += want <= have
                    differs_from_magnitude += want != mag
            print(f"fisher cherries: {rows_same}/{rows_checked} rows keep numpy's top-{frac} entries exact; "
                  f"{differs_from_magnitude} rows choose otherwise than magnitude would")
            if rows_same < rows_checked * 0.995:
                sys.exit("FAIL: the cherries kept are not the top entries by Fisher-weighted error")
            if differs_from_magnitude < rows_checked * 0.2:
                sys.exit("FAIL: the Fisher file barely changes the choice; is it read at all?")
        print("ok: importance files match their definitions and steer the cherry codec")


if __name__ == "__main__":
    main()
