#!/usr/bin/env python3
"""`deltakit plan` on a tiny trained base and fine-tune:
  * every cell is sane: raw costs nothing (KL 0, FDT = N), every FDT lies in [0, N];
  * the knapsack's allocation is optimal: no choice of candidates per family (all 3^F tried here)
    with the same byte budget adds up to less damage;
  * the plan fits the budget and measures no worse on FDT than any uniform recipe that fits;
  * its rules file is accepted by compress --rules and codes each family as chosen;
  * the hessian mode with a Fisher file ranks quant:8 below bitdelta in every family."""
import argparse, itertools, os, sys, tempfile

import h5py

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import last_json, run, tiny_pair  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    a = ap.parse_args()
    dk = a.deltakit
    with tempfile.TemporaryDirectory() as w:
        base, ft = tiny_pair(dk, w)
        rules = os.path.join(w, "rules.yaml")
        common = ["--base", base, "--finetuned", ft, "--candidates", "quant:bits=8;bitdelta", "--prompts", "8",
                  "--new-tokens", "12", "--prompts-from", "skill:rev", "--out", rules, "--overwrite", "--json"]
        # a budget between the uniform bitdelta and quant:8 sizes, where mixing has a choice
        probe = last_json(run(dk, "plan", *common, "--budget", "uniform:bitdelta"))
        sizes = {u["label"]: u["bytes"] for u in probe["uniform"]}
        bd, q8 = sizes["bitdelta:scale=matrix,levels=1"], sizes["quant:bits=8,group=128"]
        budget = (bd + q8) // 2
        r = last_json(run(dk, "plan", *common, "--budget", str(budget), "--task", "rev", "--samples", "50"))
        N, fams, cands = 12, r["families"], r["candidates"]
        cell = {(c["family"], c["recipe"]): c for c in r["cells"]}
        for (f, rc), c in cell.items():
            assert 0 <= c["fdt"] <= N, c
            if rc == "raw":
                assert c["damage"] == 0 and c["fdt"] == N, c

        cap = budget - r["fixed_bytes"]
        def cost(ch):
            return sum(cell[(f, c)]["bytes"] for f, c in zip(fams, ch)), sum(cell[(f, c)]["damage"] for f, c in zip(fams, ch))
        got_bytes, got_damage = cost(r["allocated"])
        best = min(d for b, d in map(cost, itertools.product(cands, repeat=len(fams))) if b <= cap)
        print(f"{len(fams)} families x {len(cands)} candidates, budget {budget} B: allocation {got_bytes} B damage "
              f"{got_damage:.4g}; best by brute force {best:.4g}")
        if got_bytes > cap or got_damage > best * (1 + 1e-9) + 1e-15:
            sys.exit("FAIL: the allocation is over budget or not optimal")

        plan = r["plan"]
        fitting = [u for u in r["uniform"] if u["bytes"] <= budget]
        print(f"plan {plan['bytes']} B FDT {plan['fdt_mean']:.2f} rev {plan['accuracy'][0]:.2f}; uniform in budget: " +
              ", ".join(f"{u['label']} FDT {u['fdt_mean']:.2f}" for u in fitting))
        if plan["bytes"] > budget or any(u["fdt_mean"] > plan["fdt_mean"] for u in fitting):
            sys.exit("FAIL: the plan is over budget or measures worse than a uniform recipe that fits")

        adapter = os.path.join(w, "a.h5")
        run(dk, "compress", "--base", base, "--finetuned", ft, "--rules", rules, "--out", adapter, "--quiet")
        chosen = dict(zip(fams, r["choice"]))
        with h5py.File(adapter, "r") as f:
            for g in f["tensors"].values():
                name = g.attrs["name"]
                fam = next((x for x in fams if name == x or name.endswith("." + x)), None)
                if fam is None:
                    continue
                want = chosen[fam].split(":")[0]
                if g.attrs["codec"] != want:
                    sys.exit(f"FAIL: {name} coded {g.attrs['codec']}, the plan chose {chosen[fam]}")

        fisher = os.path.join(w, "fisher.safetensors")
        run(dk, "importance", "--model", ft, "--kind", "fisher", "--calibration", "skill:rev", "--samples", "8",
            "--seq-len", "32", "--out", fisher)
        h = last_json(run(dk, "plan", *common, "--budget", str(budget), "--mode", "hessian", "--fisher", fisher))
        hc = {(c["family"], c["recipe"]): c["damage"] for c in h["cells"]}
        for f in h["families"]:
            if not hc[(f, "quant:bits=8,group=128")] < hc[(f, "bitdelta:scale=matrix,levels=1")]:
                sys.exit(f"FAIL: hessian damage of {f}: quant:8 not below bitdelta")
        print("ok: plan allocates optimally, fits, beats or equals every uniform recipe in budget, and compress "
              "follows its rules")


if __name__ == "__main__":
    main()
