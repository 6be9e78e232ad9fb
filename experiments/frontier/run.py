#!/usr/bin/env python3
"""Bytes against quality on a real pretrained model (experiments/frontier/README.md).

stories260K (../shared/data) is fine-tuned on Shakespeare and on WikiText-2, each gently (SFT-like,
small deltas) and harshly (continued pre-training, large deltas). Every recipe of recipes.txt is
applied to every fine-tune: the adapter's payload and file bytes against the fine-tune's bf16
bytes, held-out perplexity of the target text and of TinyStories (forgetting), and first
divergent token / KL against the fine-tune.

  run.py [--quick] [--models DIR] [--out DIR]       prepare the models, run every point, analyze
  run.py --part K/N ...                             one Slurm array task: every N-th point from K
  run.py --collect --out DIR                        gather the parts, write CSV, plots, README
"""
import argparse, fcntl, json, os, re, shutil, subprocess, sys, tempfile, time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", ".."))

TEXTS = {"shakespeare": "tinyshakespeare.txt", "wikitext2": "wikitext2-valid.txt"}
REGIMES = {  # finetune flags: gentle = SFT-like small delta, harsh = continued pre-training
    "gentle": ["--regime", "sft", "--steps", "60", "--lr", "3e-4"],
    "harsh": ["--regime", "continued", "--steps", "300", "--lr", "2e-3"],
}
QUICK_REGIMES = {"gentle": ["--regime", "sft", "--steps", "30", "--lr", "3e-4"]}
PLAN_CANDIDATES = ("bitdelta;bitdelta+cherry:frac=0.002,importance=fisher:{fisher};bitdelta:scale=row;"
                   "bitdelta:scale=row+cherry:frac=0.01,importance=fisher:{fisher};"
                   "quant:bits=4;quant:bits=2;dare:p=0.9;dare:p=0.98;dare:p=0.995;topk:density=0.05;"
                   "topk:density=0.01;lowrank:rank=2;lowrank:rank=1")
DARE_CANDIDATES = "dare:p=0.5;dare:p=0.8;dare:p=0.9;dare:p=0.95;dare:p=0.98;dare:p=0.99"


def run(dk, *argv, capture=True):
    p = subprocess.run([dk, *argv], capture_output=capture, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def last_json(text):
    return json.loads([l for l in text.strip().splitlines() if l.startswith("{")][-1])


def held_out(src, dst, chars=60000):
    """The last 10% of a text (from a line start), at most `chars`: finetune trains on the rest."""
    t = open(src, encoding="utf-8", errors="replace").read()
    cut = t.find("\n", int(len(t) * 0.9)) + 1
    open(dst, "w").write(t[cut:cut + chars])


def prepare(a, models):
    """Idempotent (a Slurm array's tasks all call it, under a lock)."""
    os.makedirs(models, exist_ok=True)
    with open(os.path.join(models, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        dk, data = a.deltakit, a.data
        base = os.path.join(models, "base")
        if not os.path.exists(os.path.join(base, "config.json")):
            run(dk, "import-llama2c", os.path.join(data, "stories260K.bin"), "--tokenizer",
                os.path.join(data, "tok512.bin"), "--out", base)
        toks = {}
        for name, f in list(TEXTS.items()) + [("tinystories", "tinystories-sample.txt")]:
            held = os.path.join(models, f"{name}-held.bin")
            if not os.path.exists(held):
                txt = os.path.join(models, f"{name}-held.txt")
                held_out(os.path.join(data, f), txt)
                run(dk, "tokenize", "--model", base, "--text", txt, "--out", held)
            calib = os.path.join(models, f"{name}-calib.bin")
            if not os.path.exists(calib):  # the first 100 KB: inside the fine-tune's training part
                txt = os.path.join(models, f"{name}-calib.txt")
                open(txt, "w").write(open(os.path.join(data, f), encoding="utf-8", errors="replace").read()[:100000])
                run(dk, "tokenize", "--model", base, "--text", txt, "--out", calib)
            toks[name] = (held, calib)
        fts = []
        texts = {"shakespeare": TEXTS["shakespeare"]} if a.quick else TEXTS
        for text, f in texts.items():
            for regime, flags in (QUICK_REGIMES if a.quick else REGIMES).items():
                ft = os.path.join(models, f"ft-{text}-{regime}")
                if not os.path.exists(os.path.join(ft, "config.json")):
                    run(dk, "finetune", "--model", base, "--task", "text:" + os.path.join(data, f), "--out", ft,
                        "--quiet", *flags)
                fisher = ft + ".fisher.safetensors"
                if not os.path.exists(fisher):
                    run(dk, "importance", "--model", ft, "--kind", "fisher", "--calibration",
                        "tokens:" + toks[text][1], "--out", fisher)
                fts.append({"name": f"{text}-{regime}", "text": text, "regime": regime, "dir": ft, "fisher": fisher})
        return base, fts, toks


def recipes(quick):
    out = []
    for line in open(os.path.join(here, "recipes.txt")):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split()
        tags = {"quick"} & set(parts[3:])
        parts = [p for p in parts if p != "quick"]
        if quick and "quick" not in tags:
            continue
        out.append({"family": parts[0], "label": parts[1], "kind": parts[2], "args": parts[3:]})
    return out


def param_count(dk, model):
    return int(re.search(r"(\d+) parameters", run(dk, "inspect", model)).group(1))


def evaluate(dk, model, ft, toks, text):
    """Held-out perplexity of the target text and of TinyStories; FDT and KL against the fine-tune."""
    j = last_json(run(dk, "eval", "--model", model, "--tokens", toks[text][0], "--reference", ft["dir"],
                      "--prompts-from", "tokens:" + toks[text][0], "--prompts", "32", "--prompt-len", "32",
                      "--new-tokens", "32", "--json"))
    s = last_json(run(dk, "eval", "--model", model, "--tokens", toks["tinystories"][0], "--json"))
    return {"target_ppl": j["perplexity"], "stories_ppl": s["perplexity"], "fdt_mean": j["reference"]["fdt_mean"],
            "kl_mean": j["reference"]["kl_mean"]}


def adapter_payload(dk, adapter):
    return sum(t["stored_bytes"] for t in last_json(run(dk, "inspect", adapter, "--json"))["tensors"])


def measure(a, base, ft, toks, r, bf16_bytes, work):
    dk = a.deltakit
    t0 = time.time()
    fisher = ft["fisher"]
    args = [x.replace("{fisher}", fisher) for x in r["args"]]
    ad = os.path.join(work, "a.h5")
    calib = ["--calibration", "tokens:" + toks[ft["text"]][1], "--distill-steps", "40" if a.quick else "150",
             "--distill-seq-len", "64"]
    row = {"finetune": ft["name"], "family": r["family"], "label": r["label"], "recipe": " ".join(r["args"])}
    if r["kind"] in ("compress", "distill"):
        run(dk, "compress", "--base", base, "--finetuned", ft["dir"], "--recipe", args[0], "--out", ad, "--quiet",
            *(["--distill", *calib] if r["kind"] == "distill" else []))
    elif r["kind"] == "lora":
        lora = os.path.join(work, "lora")
        run(dk, "export-lora", "--base", base, "--finetuned", ft["dir"], "--rank", args[0], "--out", lora)
        st = os.path.join(lora, "adapter_model.safetensors")
        n = int.from_bytes(open(st, "rb").read(8), "little")
        row["file_bytes"] = os.path.getsize(st) + os.path.getsize(os.path.join(lora, "adapter_config.json"))
        row["payload_bytes"] = os.path.getsize(st) - 8 - n
        run(dk, "compress", "--base", base, "--finetuned", lora, "--out", ad, "--quiet")  # base + B·A, exactly
    elif r["kind"] in ("plan", "plan-uniform"):
        rules = os.path.join(work, "rules.yaml")
        if r["kind"] == "plan":
            budget = str(int(float(args[0]) * bf16_bytes))
            cands = PLAN_CANDIDATES.replace("{fisher}", fisher)
        else:
            budget, cands = "uniform:" + args[0], DARE_CANDIDATES
        run(dk, "plan", "--base", base, "--finetuned", ft["dir"], "--budget", budget, "--candidates", cands,
            "--prompts-from", "tokens:" + toks[ft["text"]][1], "--prompts", "16" if a.quick else "32",
            "--prompt-len", "32", "--out", rules)
        try:
            run(dk, "compress", "--base", base, "--finetuned", ft["dir"], "--rules", rules, "--out", ad, "--quiet",
                *(["--distill", *calib] if "distill" in args else []))
        except RuntimeError as e:  # the plan chose no bitdelta: nothing to distill
            if "nothing to distill" not in str(e):
                raise
            run(dk, "compress", "--base", base, "--finetuned", ft["dir"], "--rules", rules, "--out", ad, "--quiet")
            row["recipe"] += " (no bitdelta chosen: not distilled)"
        row["recipe"] += " -> " + " ".join(l.strip() for l in open(rules) if "recipe:" in l)
    else:
        raise ValueError(r["kind"])
    if "payload_bytes" not in row:
        row["payload_bytes"] = adapter_payload(dk, ad)
        row["file_bytes"] = os.path.getsize(ad)
    applied = os.path.join(work, "applied")
    run(dk, "apply", "--base", base, "--adapter", ad, "--out", applied, "--quiet", "--overwrite")
    row.update(evaluate(dk, applied, ft, toks, ft["text"]))
    row["bf16_bytes"] = bf16_bytes
    row["seconds"] = round(time.time() - t0, 2)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", default=os.environ.get("DELTAKIT", os.path.join(root, "build", "apps", "deltakit")))
    ap.add_argument("--data", default=os.path.join(root, "..", "shared", "data"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--models", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--part", default="")
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--readme", default="")
    a = ap.parse_args()
    out = a.out or os.path.join(root, "results", "frontier", "quick" if a.quick else "")
    models = a.models or os.path.join(out, "models")
    if not a.collect:
        if not os.path.exists(os.path.join(a.data, "stories260K.bin")):
            print(f"skip: {a.data}/stories260K.bin is absent (../shared/data)")
            sys.exit(77)
        start = time.time()
        base, fts, toks = prepare(a, models)
        bf16_bytes = 2 * param_count(a.deltakit, base)
        points = [(ft, r) for ft in fts for r in recipes(a.quick)]
        k, n = (int(x) for x in a.part.split("/")) if a.part else (0, 1)
        os.makedirs(os.path.join(out, "parts"), exist_ok=True)
        part = os.path.join(out, "parts", f"part-{k:03d}-of-{n:03d}.jsonl")
        done = set()  # a rerun (a requeued Slurm task) keeps the points a killed run finished
        for old in (part, part + ".tmp"):
            if os.path.exists(old):
                done |= {(r["finetune"], r["family"], r["label"]) for r in map(json.loads, open(old)) if r}
                if old == part:
                    os.replace(part, part + ".tmp")
                break
        with open(part + ".tmp", "a") as f:
            if k == 0 and not done:  # the reference points: the fine-tunes themselves and the base
                for ft in fts:
                    for who, model in (("finetune", ft["dir"]), ("base", base)):
                        row = {"finetune": ft["name"], "family": who, "label": who, "recipe": "",
                               "payload_bytes": 0, "file_bytes": 0, "bf16_bytes": bf16_bytes, "seconds": 0}
                        row.update(evaluate(a.deltakit, model, ft, toks, ft["text"]))
                        f.write(json.dumps(row) + "\n")
            for i, (ft, r) in enumerate(points):
                if i % n != k or (ft["name"], r["family"], r["label"]) in done:
                    continue
                with tempfile.TemporaryDirectory() as work:
                    try:
                        row = measure(a, base, ft, toks, r, bf16_bytes, work)
                    except RuntimeError as e:  # a budget no choice fits, say: recorded, not fatal
                        print(f"{ft['name']} {r['family']} {r['label']}: {e}", flush=True)
                        f.write(json.dumps({"finetune": ft["name"], "family": r["family"], "label": r["label"],
                                            "error": str(e).splitlines()[-1][-300:]}) + "\n")
                        continue
                f.write(json.dumps(row) + "\n")
                f.flush()
                print(f"{row['finetune']:22s} {row['family']:14s} {row['label']:26s} "
                      f"payload {row['payload_bytes'] / bf16_bytes:7.4f} of bf16  ppl {row['target_ppl']:8.3f}  "
                      f"stories {row['stories_ppl']:7.3f}  fdt {row['fdt_mean']:5.1f}", flush=True)
        os.replace(part + ".tmp", part)
        if a.part:
            return
        seconds = time.time() - start
    else:
        seconds = 0
    cmd = [sys.executable, os.path.join(here, "analyze.py"), "--results", out,
           "--readme", a.readme or (os.path.join(out, "README.md") if a.quick else os.path.join(here, "README.md")),
           "--seconds", str(int(seconds)), "--command", "experiments/frontier/run.py" + (" --quick" if a.quick else "")]
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
