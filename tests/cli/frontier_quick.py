#!/usr/bin/env python3
"""Smoke test of experiments/frontier/run.py --quick (stories260K from ../shared/data, one gentle
Shakespeare fine-tune, the recipes marked quick): every quick recipe has a row with sane values and
the measurements show what must hold on any model: raw is the fine-tune itself (perplexity, FDT at
its maximum, KL 0); the exported LoRA and the lowrank codec at the same rank hold the same truncated
SVD of every matrix, so they score within 1% (the codec also carries the norms' deltas, raw; a LoRA
drops them); the plan at 1/16 stays within 5% of its budget; a payload is smaller
than its file. Skips (77) where ../shared/data is absent."""
import argparse, csv, os, subprocess, sys, tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--data", required=True)
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.data, "stories260K.bin")):
        print(f"skip: no stories260K.bin in {a.data}")
        sys.exit(77)
    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run([sys.executable, os.path.join(a.repo, "experiments", "frontier", "run.py"), "--quick",
                            "--out", out, "--data", a.data, "--deltakit", a.deltakit],
                           capture_output=True, text=True, timeout=600)
        if p.returncode:
            sys.exit(f"FAIL: run.py --quick exited {p.returncode}\n{p.stdout[-1000:]}\n{p.stderr[-2000:]}")
        rows = list(csv.DictReader(open(os.path.join(out, "frontier.csv"))))
        quick = [l.split()[:2] for l in open(os.path.join(a.repo, "experiments", "frontier", "recipes.txt"))
                 if l.strip() and not l.startswith("#") and l.split()[-1] == "quick"]
        got = {(r["family"], r["label"]): r for r in rows}
        for fam, label in quick + [["finetune", "finetune"], ["base", "base"]]:
            assert (fam, label) in got, (fam, label, sorted(got))
        ft, raw = got[("finetune", "finetune")], got[("raw", "raw")]
        f = lambda r, k: float(r[k])
        assert f(raw, "target_ppl") == f(ft, "target_ppl") and f(raw, "kl_mean") == 0, (raw, ft)
        assert f(got[("base", "base")], "target_ppl") > 2 * f(ft, "target_ppl"), "the fine-tune learnt nothing"
        lora, lowrank = got[("lora", "r=4")], got[("lowrank", "r=4")]
        assert abs(f(lora, "target_ppl") - f(lowrank, "target_ppl")) <= 1e-2 * f(lowrank, "target_ppl"), (lora, lowrank)
        plan = got[("plan", "1/16")]
        assert f(plan, "size") <= 0.0625 * 1.05, plan
        for r in rows:
            if r["family"] not in ("finetune", "base"):
                assert 0 < f(r, "payload_bytes") < f(r, "file_bytes"), r
                assert f(r, "target_ppl") > 1 and 0 <= f(r, "fdt_mean") <= 32, r
        assert os.path.exists(os.path.join(out, "README.md"))
        print(f"ok: {len(rows)} rows; fine-tune ppl {f(ft, 'target_ppl'):.2f}, plan 1/16 {f(plan, 'target_ppl'):.2f} "
              f"at {f(plan, 'size'):.4f}, lora r=4 {f(lora, 'target_ppl'):.3f} ~ lowrank r=4 {f(lowrank, 'target_ppl'):.3f}")


if __name__ == "__main__":
    main()
