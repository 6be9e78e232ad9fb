#!/usr/bin/env python3
"""`deltakit eval --reference` against numpy: two tiny trained models (60 and 90 steps of the same
run), prompts of several lengths from a lines file. numpy continues each prompt greedily with the
reference, runs both models teacher-forced on [x; y] and computes FDT, SDT, the FDT >= tau share
and KL(ref || model) exactly as algorithms.md §5 and src/eval/divergence.h define them; deltakit's JSON must
agree. A model against itself must not diverge at all (FDT = N, KL = 0)."""
import argparse, json, os, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_numpy import logits_of, read_safetensors  # noqa: E402


def softmax(lg):
    e = np.exp(lg - lg.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_metrics(Wr, Wm, cfg, prompts, N, tau):
    fdts, sdts, kls = [], [], []
    for x in prompts:
        seq = list(x)
        for _ in range(N):  # the reference's greedy continuation
            seq.append(int(np.argmax(logits_of(Wr, cfg, seq)[-1])))
        text = seq[:-1]
        pr, pm = softmax(logits_of(Wr, cfg, text)), softmax(logits_of(Wm, cfg, text))
        rows = range(len(x) - 1, len(x) - 1 + N)
        div = [i for i, r in enumerate(rows) if np.argmax(pm[r]) != np.argmax(pr[r])]
        fdts.append(div[0] if div else N)
        sdts.append(len(div) / N)
        kls += [float((pr[r] * (np.log(pr[r]) - np.log(pm[r]))).sum()) for r in rows]
    return {"fdt_mean": np.mean(fdts), "fdt_median": float(np.median(fdts)), "sdt_mean": np.mean(sdts),
            "share_fdt_at_least_tau": np.mean([f >= tau for f in fdts]), "kl_mean": np.mean(kls)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        ref, model = os.path.join(work, "ref"), os.path.join(work, "model")
        for out, steps in ((ref, "90"), (model, "60")):
            subprocess.run([a.deltakit, "train", "--size", "tiny", "--steps", steps, "--out", out, "--quiet"], check=True)
        cfg = json.load(open(os.path.join(ref, "config.json")))
        Wr = read_safetensors(os.path.join(ref, "model.safetensors"))
        Wm = read_safetensors(os.path.join(model, "model.safetensors"))
        prompts = [[256] + list(s) for s in (b"The shai", b"say abc: ", b"A mai vel runs by", b"add 1", b"caps ab=",
                                             b"count: a a a a", b"T")]
        lines = os.path.join(work, "prompts.txt")
        open(lines, "w").write("\n".join(" ".join(map(str, p)) for p in prompts) + "\n")
        N, tau = 12, 6

        def run(m):
            p = subprocess.run([a.deltakit, "eval", "--model", m, "--reference", ref, "--prompts-from", "lines:" + lines,
                                "--new-tokens", str(N), "--tau", str(tau), "--json"],
                               capture_output=True, text=True, check=True)
            print(p.stdout.strip().splitlines()[0])
            return json.loads(p.stdout.strip().splitlines()[-1])["reference"]

        same = run(ref)
        if same["fdt_mean"] != N or same["sdt_mean"] != 0 or same["kl_mean"] != 0 or same["prompts"] != len(prompts):
            sys.exit(f"FAIL: the reference against itself diverges: {same}")
        got = run(model)
        want = reference_metrics(Wr, Wm, cfg, prompts, N, tau)
        print("numpy:", {k: round(float(v), 6) for k, v in want.items()})
        for k in ("fdt_mean", "fdt_median", "sdt_mean", "share_fdt_at_least_tau"):
            if abs(got[k] - want[k]) > 1e-9:
                sys.exit(f"FAIL: {k} is {got[k]}, numpy says {want[k]}")
        if abs(got["kl_mean"] - want["kl_mean"]) > 1e-3 * want["kl_mean"] + 1e-6:
            sys.exit(f"FAIL: kl_mean is {got['kl_mean']}, numpy says {want['kl_mean']}")
        if not 0 < got["sdt_mean"] < 1:
            sys.exit("FAIL: the two models should diverge somewhere, not everywhere: the test shows nothing")
        print("ok: FDT, SDT, the tau share and KL match numpy; a model against itself never diverges")


if __name__ == "__main__":
    main()
