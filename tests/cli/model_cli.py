#!/usr/bin/env python3
"""Integration tests of the model engine through the CLI.

  demo        the embedded default on the small preset: the base scores < 30% on each skill,
              each fine-tune >= 90% on its own with mean|d|/mean|w| < 0.15 and held-out corpus
              perplexity under twice the base's; a raw adapter applied reproduces the fine-tune's
              accuracy exactly; bitdelta is > 5x smaller than the fine-tune's tensors
  stories260k the real pretrained model in ../shared/data (skips without it): import from
              llama2.c, perplexity on the TinyStories sample close to 4.3 (40 windows of 256),
              greedy generation from "Once upon a time", a gentle (SFT-like) and a harsh fine-tune
              on Shakespeare that lower held-out Shakespeare perplexity, the harsh one with much
              larger deltas
"""
import argparse, csv, json, os, subprocess, sys, tempfile

SKIP = 77


def run(*argv, **kw):
    p = subprocess.run(list(argv), capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} exited {p.returncode}\n{p.stderr}")
    return p.stdout


# Every default skill: the base does each in prose, SFT teaches the terse format.
LEARNED = ["rev", "sort", "caps", "dup"]


def case_demo(a, work):
    out = os.path.join(work, "demo")
    argv = [a.deltakit, "demo", "--size", "small", "--out", out, "--samples", "100", "--recipe", "raw", "--recipe",
            "bitdelta", "--quiet"]
    for s in LEARNED:
        argv += ["--skill", s]
    stdout = run(*argv)
    rows = list(csv.DictReader(open(os.path.join(out, "demo.csv"))))
    skills = sorted({r["skill"] for r in rows})
    if skills != sorted(LEARNED):
        sys.exit(f"FAIL: demo.csv has skills {skills}, want {LEARNED}")
    for s in skills:
        get = lambda model, recipe="-": next(r for r in rows if r["skill"] == s and r["model"] == model and r["recipe"] == recipe)
        base, ft = float(get("base")["accuracy"]), float(get("fine-tune")["accuracy"])
        raw, bit = get("adapter", "raw"), get("adapter", "bitdelta")
        print(f"{s}: base {base:.2f} fine-tune {ft:.2f} raw {float(raw['accuracy']):.2f} "
              f"bitdelta {float(bit['accuracy']):.2f} ({float(bit['ratio']):.1f}x) "
              f"mean|d|/mean|w| {float(get('fine-tune')['mean_rel_delta']):.4f}")
        if not base < 0.30:
            sys.exit(f"FAIL: the base already scores {base:.2f} on {s}")
        if not ft >= 0.90:
            sys.exit(f"FAIL: the {s} fine-tune scores {ft:.2f} < 0.90")
        if float(raw["accuracy"]) != ft or float(raw["rel_error"]) != 0.0:
            sys.exit(f"FAIL: the raw adapter of {s} is not lossless: {raw}")
        rel, ppl, base_ppl = float(get("fine-tune")["mean_rel_delta"]), float(get("fine-tune")["perplexity"]), float(get("base")["perplexity"])
        if not 0 < rel < 0.15:
            sys.exit(f"FAIL: the {s} fine-tune moved the weights by mean|d|/mean|w| = {rel:.3f}, not SFT-like (< 0.15)")
        if not ppl < 2 * base_ppl:
            sys.exit(f"FAIL: the {s} fine-tune forgot the corpus: perplexity {base_ppl:.2f} -> {ppl:.2f}")
        if not float(bit["ratio"]) > 5:
            sys.exit(f"FAIL: bitdelta only {bit['ratio']}x smaller")
    # the demo's end: one base serving the four adapters in one batch; where the chosen adapter
    # scored 100% on the evaluation examples, its served answer (one of them) must be right
    served = stdout.split("served from one base holding", 1)[-1].strip().splitlines()[1:]
    print("\n".join(served))
    if len(served) != len(LEARNED):
        sys.exit(f"FAIL: not one served completion per skill:\n{stdout[-800:]}")
    for line in served:
        skill, recipe = line.split()[:2]
        acc = float(next(r for r in rows if r["skill"] == skill and r["recipe"] == recipe)["accuracy"])
        if acc == 1.0 and " correct " not in line:
            sys.exit(f"FAIL: a 100% adapter served a wrong answer: {line}")
    print("ok: base < 30%, fine-tunes >= 90% with SFT-sized deltas, raw adapters exact, bitdelta > 5x, "
          "four adapters served from one base")


def case_stories260k(a, work):
    data = a.data
    need = [os.path.join(data, f) for f in ("stories260K.bin", "tok512.bin", "tinystories-sample.txt", "tinyshakespeare.txt")]
    missing = [f for f in need if not os.path.exists(f)]
    if missing:
        print(f"SKIP: {missing[0]} is absent (../shared/data is only beside developer and CI clones)")
        sys.exit(SKIP)
    model = os.path.join(work, "s260")
    run(a.deltakit, "import-llama2c", need[0], "--tokenizer", need[1], "--out", model)
    cfg = json.load(open(os.path.join(model, "config.json")))
    assert cfg["hidden_size"] == 64 and cfg["num_hidden_layers"] == 5 and cfg["num_key_value_heads"] == 4, cfg
    ev = json.loads(run(a.deltakit, "eval", "--model", model, "--text", need[2], "--window", "256", "--max-tokens",
                        str(40 * 256 + 1), "--json").strip().splitlines()[-1])
    print(f"stories260K on TinyStories: perplexity {ev['perplexity']:.3f} over {ev['tokens']} tokens")
    if ev["tokens"] != 40 * 256 or not 4.0 < ev["perplexity"] < 4.6:
        sys.exit(f"FAIL: expected perplexity close to 4.3 over 10240 tokens, got {ev}")
    text = run(a.deltakit, "generate", "--model", model, "--prompt", "Once upon a time", "--max-new", "40")
    print("generated:", text.strip())
    if not text.startswith("Once upon a time, there was a little girl named Lily."):
        sys.exit("FAIL: greedy generation differs from the model's known output")
    # held-out Shakespeare: the last 10% of the file (finetune trains on the first 90%)
    play = open(need[3], encoding="utf-8").read()
    tail = os.path.join(work, "tail.txt")
    open(tail, "w").write(play[len(play) - len(play) // 10:][:20000])
    before = json.loads(run(a.deltakit, "eval", "--model", model, "--text", tail, "--window", "256", "--json").splitlines()[-1])
    # gentle: SFT-like, mean|d| ~ 0.002 as in real SFT; harsh: ten times the learning rate
    ppl, rel = {}, {}
    for name, steps, lr in (("gentle", "100", "2e-4"), ("harsh", "150", "2e-3")):
        ft = os.path.join(work, "s260-" + name)
        run(a.deltakit, "finetune", "--model", model, "--task", "text:" + need[3], "--out", ft, "--steps", steps,
            "--batch", "8", "--seq", "128", "--lr", lr, "--warmup", "10", "--quiet")
        ev = json.loads(run(a.deltakit, "eval", "--model", ft, "--text", tail, "--window", "256", "--json").splitlines()[-1])
        d = json.loads(run(a.deltakit, "diff", "--base", model, "--finetuned", ft, "--json"))
        fam = {f["name"]: f for f in d["families"]}
        if "self_attn.q_proj.weight" not in fam or len(d["tensors"]) != 47:
            sys.exit(f"FAIL: diff of the {name} fine-tune lists {len(d['tensors'])} tensors, families {list(fam)}")
        ppl[name], rel[name] = ev["perplexity"], d["total"]["rel_mean_abs"]
        print(f"{name}: held-out Shakespeare perplexity {before['perplexity']:.1f} -> {ev['perplexity']:.1f}, "
              f"mean|d| {d['total']['mean_abs']:.2e}, mean|d|/mean|w| {rel[name]:.4f}")
    if not ppl["gentle"] < 0.5 * before["perplexity"] or not ppl["harsh"] < ppl["gentle"]:
        sys.exit(f"FAIL: fine-tuning on Shakespeare should lower held-out perplexity, harsh most: {ppl}")
    if not rel["harsh"] > 3 * rel["gentle"]:
        sys.exit(f"FAIL: the harsh fine-tune's deltas are not much larger than the gentle one's: {rel}")
    print("ok: stories260K imported, evaluated, generated and fine-tuned")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--data", default="")
    ap.add_argument("--case", required=True, choices=["demo", "stories260k"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        globals()["case_" + a.case](a, work)


if __name__ == "__main__":
    main()
