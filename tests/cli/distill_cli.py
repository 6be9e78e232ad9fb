#!/usr/bin/env python3
"""`deltakit compress --distill` on a tiny trained base and fine-tune, read back with the
independent h5py decoder (adapter_decode.py):
  * the held-out logit loss falls;
  * only the bitdelta.scales datasets change — signs and cherries are the undistilled adapter's,
    byte for byte — and each distilled tensor says so (bitdelta.distilled = 1, root distillation);
  * the output is the same bytes for 1 and 2 threads, and no temporary is left beside it;
  * the applied model's logits are closer to the fine-tune's than the undistilled one's (numpy)."""
import argparse, json, os, sys, tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adapter_decode import read_dataset  # noqa: E402
from cli_run import last_json, run, tiny_pair  # noqa: E402
from model_numpy import logits_of, read_safetensors  # noqa: E402


def tensors(path):
    with h5py.File(path, "r") as f:
        return {g.attrs["name"]: ({k: g.attrs[k] for k in g.attrs}, {p: read_dataset(g[p]) for p in g})
                for g in f["tensors"].values()}, dict(f.attrs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    dk = a.deltakit
    with tempfile.TemporaryDirectory() as w:
        base, ft = tiny_pair(dk, w)
        recipe = ["--recipe", "bitdelta:scale=row + cherry:frac=0.02", "--only", "*_proj.weight"]
        plain, dist = os.path.join(w, "plain.h5"), os.path.join(w, "dist.h5")
        run(dk, "compress", "--base", base, "--finetuned", ft, *recipe, "--out", plain, "--quiet")
        outs = []
        for threads, out in (("1", dist), ("2", os.path.join(w, "dist2.h5"))):
            outs.append(last_json(run(dk, "compress", "--base", base, "--finetuned", ft, *recipe, "--out", out,
                                      "--quiet", "--json", "--distill", "--distill-steps", "40", "--distill-seq-len",
                                      "32", "--threads", threads)))
        d = outs[0]["distillation"]
        print(f"distillation: {d['tensors']} tensors, {d['scales']} scales, held-out logit loss "
              f"{d['loss_before']:.5g} -> {d['loss_after']:.5g}")
        if not d["loss_after"] < 0.9 * d["loss_before"]:
            sys.exit("FAIL: distillation did not lower the held-out loss by 10%")
        if open(dist, "rb").read() != open(os.path.join(w, "dist2.h5"), "rb").read():
            sys.exit("FAIL: 1 and 2 threads wrote different adapters")
        left = [f for f in os.listdir(w) if f.startswith(".")]
        if left:
            sys.exit(f"FAIL: temporaries left beside the output: {left}")

        P, _ = tensors(plain)
        D, root = tensors(dist)
        assert json.loads(root["distillation"])["steps"] == 40
        changed = 0
        for name, (attrs, parts) in P.items():
            dattrs, dparts = D[name]
            assert set(parts) == set(dparts), name
            for part, arr in parts.items():
                same = np.array_equal(arr, dparts[part])
                if part == "bitdelta.scales":
                    changed += not same
                    assert dattrs["bitdelta.distilled"] == 1, name
                elif not same:
                    sys.exit(f"FAIL: {name}: {part} changed; only the scales may")
        if changed != d["tensors"] or changed == 0:
            sys.exit(f"FAIL: {changed} tensors' scales changed, the report says {d['tensors']}")

        # function, not weights: the applied models' logits against the fine-tune's on a fresh text
        cfg = json.load(open(os.path.join(ft, "config.json")))
        Wf = read_safetensors(os.path.join(ft, "model.safetensors"))
        ids = [256] + list(b"rev abcde=edcba\nThe shai kounr tral some doufs.\nrev qxz=zxq\n")
        gap = {}
        for tag, adapter in (("plain", plain), ("distilled", dist)):
            out = os.path.join(w, "applied-" + tag)
            run(dk, "apply", "--base", base, "--adapter", adapter, "--out", out, "--quiet")
            Wa = read_safetensors(os.path.join(out, "model.safetensors"))
            gap[tag] = float(((logits_of(Wa, cfg, ids) - logits_of(Wf, cfg, ids)) ** 2).sum(-1).mean())
        print(f"numpy logit gap to the fine-tune: plain {gap['plain']:.5g}, distilled {gap['distilled']:.5g}")
        if not gap["distilled"] < gap["plain"]:
            sys.exit("FAIL: the distilled adapter's logits are not closer to the fine-tune's")
        print("ok: distillation fits the scales alone and brings the logits closer")


if __name__ == "__main__":
    main()
