#!/usr/bin/env python3
"""PEFT LoRA in and out, one case per CTest test. Every LoRA is read or written here with json +
struct + numpy, independently of deltakit:
  export  deltakit export-lora of a fine-tune whose matrices moved by rank-3 deltas: the adapter
          rebuilt as W + (alpha/r)·B·A (rank/alpha patterns honoured, embeddings transposed) is
          the fine-tune; with --energy the ranks differ per module and the rebuild equals
          deltakit's own lowrank codec applied; the engine's perplexity on base + LoRA equals it
          on the applied lowrank adapter; norms are reported as dropped with their share
  import  numpy-written LoRAs (rslora, rank_pattern, alpha_pattern, fan_in_fan_out) as the
          fine-tune of diff, compress (raw and lossy) + apply, and merge (beside a checkpoint):
          each equals the numpy reference W + scale·B·A
  bad     a bad LoRA folder is refused with one line naming it, exit code non-zero, nothing written
  mpi     export-lora under mpirun -n 1, 2, 3 (and 1 vs 2 threads) writes the same bytes
"""
import argparse, json, os, re, shutil, struct, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import MPI_ENV as ENV  # noqa: E402
from merge_cli import mix, read_st, trim, write_st  # noqa: E402

PREFIX = "base_model.model."


def run(*argv, ok=True):
    p = subprocess.run(list(argv), capture_output=True, text=True, env=ENV, timeout=300)
    if ok and p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} exited {p.returncode}\n{p.stderr}")
    return p


def check(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)


# --- an independent PEFT LoRA reader and writer ------------------------------------------------
def pattern_key(keys, module):  # PEFT's match: "(.*\.)?(KEY)$" over the whole module name
    for k in keys:
        if re.fullmatch(r"(.*\.)?(" + k + r")", module):
            return k
    return None


def lora_deltas(folder):
    """{base tensor name: δ} from a PEFT folder, as PEFT's get_delta_weight computes it."""
    cfg = json.load(open(os.path.join(folder, "adapter_config.json")))
    tensors, _ = read_st(folder)
    modules = {}
    for name, (_, arr) in tensors.items():
        assert name.startswith(PREFIX), name
        for suffix, role in ((".lora_A.weight", "A"), (".lora_B.weight", "B"), (".lora_embedding_A", "eA"),
                             (".lora_embedding_B", "eB")):
            if name.endswith(suffix):
                modules.setdefault(name[len(PREFIX):-len(suffix)], {})[role] = arr
    out = {}
    for module, f in modules.items():
        rk = pattern_key(list(cfg.get("rank_pattern") or {}), module)
        ak = pattern_key(list(cfg.get("alpha_pattern") or {}), module)
        r = cfg["rank_pattern"][rk] if rk else cfg["r"]
        alpha = cfg["alpha_pattern"][ak] if ak else cfg["lora_alpha"]
        scale = alpha / (np.sqrt(r) if cfg.get("use_rslora") else r)
        if "eA" in f:
            assert f["eA"].shape[0] == r
            out[module + ".weight"] = scale * (f["eB"] @ f["eA"]).T
        else:
            assert f["A"].shape[0] == r and f["B"].shape[1] == r
            d = scale * (f["B"] @ f["A"])
            out[module + ".weight"] = d.T if cfg.get("fan_in_fan_out") else d
    return cfg, out


def write_lora(folder, cfg, factors):
    """A PEFT folder: factors {module: (A, B)} (embedding modules: names ending in embed_tokens)."""
    os.makedirs(folder, exist_ok=True)
    json.dump(cfg, open(os.path.join(folder, "adapter_config.json"), "w"))
    header, blobs, off = {}, [], 0
    for module, (a, b) in factors.items():
        emb = module.endswith("embed_tokens")
        for role, arr in (("A", a), ("B", b)):
            name = PREFIX + module + (f".lora_embedding_{role}" if emb else f".lora_{role}.weight")
            raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
            header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(folder, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def fixture(a, work):
    base, ft0 = os.path.join(work, "base"), os.path.join(work, "ft0")
    run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft0, "--dtype", "f32", "--size", "tiny")
    return base, ft0


def max_rel(x, y):
    return float(np.max(np.abs(x - y)) / max(1e-30, np.max(np.abs(y))))


# --- cases ---------------------------------------------------------------------------------------
def case_export(a, work):
    base, ft_random = fixture(a, work)
    B, order = read_st(base)
    rng = np.random.default_rng(5)
    lowrank, norms = {}, []
    for name in order:
        w = B[name][1]
        if w.ndim == 2:
            d = 0.01 * rng.standard_normal((w.shape[0], 3)) @ rng.standard_normal((3, w.shape[1]))
        else:
            d = 0.001 * rng.standard_normal(w.shape)
            norms.append(name)
        lowrank[name] = (w + d).astype(np.float32)
    ft = os.path.join(work, "ft_rank3")
    write_st(ft, lowrank, base)
    out = os.path.join(work, "lora3")
    rep = json.loads(run(a.deltakit, "export-lora", "--base", base, "--finetuned", ft, "--rank", "3", "--out", out,
                         "--json").stdout.strip().splitlines()[-1])
    cfg, deltas = lora_deltas(out)
    check(cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["bias"] == "none", "config fields")
    check(cfg["r"] == 3 and cfg["lora_alpha"] == 3, f"r/alpha {cfg['r']}/{cfg['lora_alpha']}")
    matrices = [n for n in order if B[n][1].ndim == 2]
    check(sorted(deltas) == sorted(matrices), f"modules {sorted(deltas)}")
    check(any(n.endswith("embed_tokens.weight") for n in deltas), "the embedding is exported")
    for name in matrices:
        err = max_rel(B[name][1] + deltas[name], lowrank[name].astype(np.float64))
        check(err < 1e-5, f"{name}: base + B·A differs from the rank-3 fine-tune by {err:.2e}")
    dropped = {d["tensor"] for d in rep["dropped"]}
    check(dropped == set(norms), f"dropped {dropped}")
    share = sum(d["delta_share"] for d in rep["dropped"])
    want = sum(np.sum((lowrank[n] - B[n][1]) ** 2) for n in norms) / sum(np.sum((lowrank[n] - B[n][1]) ** 2) for n in order)
    check(abs(share - want) < 1e-4 * max(want, 1e-12) + 1e-9, f"dropped share {share} vs {want}")
    print(f"ok: rank-3 fine-tune exported exactly ({len(matrices)} modules); norms dropped ({share:.2e} of |d|^2)")

    # from a deltakit adapter whose matrices are lowrank: the LoRA is the adapter's δ̂
    ad3 = os.path.join(work, "lowrank3.h5")
    run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", "lowrank:rank=3", "--out", ad3)
    applied3 = os.path.join(work, "lowrank3_applied")
    run(a.deltakit, "apply", "--base", base, "--adapter", ad3, "--out", applied3)
    out_ad = os.path.join(work, "lora_from_adapter")
    run(a.deltakit, "export-lora", "--base", base, "--adapter", ad3, "--rank", "3", "--out", out_ad)
    A3, _ = read_st(applied3)
    _, deltas = lora_deltas(out_ad)
    check(sorted(deltas) == sorted(matrices), "export from the adapter: every matrix")
    for name in matrices:
        err = max_rel(B[name][1] + deltas[name], A3[name][1])
        check(err < 1e-5, f"{name}: LoRA from the lowrank adapter differs from the applied adapter by {err:.2e}")
    print("ok: export-lora --adapter of a lowrank:rank=3 adapter rebuilds the applied adapter")

    # --energy: per-module ranks (rank_pattern), equal to deltakit's own lowrank codec
    out_e = os.path.join(work, "lora_energy")
    run(a.deltakit, "export-lora", "--base", base, "--finetuned", ft_random, "--energy", "0.6", "--out", out_e)
    cfg, deltas = lora_deltas(out_e)
    check(cfg["rank_pattern"] and cfg["rank_pattern"] == cfg["alpha_pattern"], "rank_pattern = alpha_pattern")
    ad = os.path.join(work, "lowrank.h5")
    run(a.deltakit, "compress", "--base", base, "--finetuned", ft_random, "--recipe", "lowrank:energy=0.6", "--out", ad)
    applied = os.path.join(work, "lowrank_applied")
    run(a.deltakit, "apply", "--base", base, "--adapter", ad, "--out", applied)
    Ap, _ = read_st(applied)
    for name, d in deltas.items():
        err = max_rel(B[name][1] + d, Ap[name][1])
        check(err < 1e-5, f"{name}: LoRA rebuild differs from lowrank:energy=0.6 applied by {err:.2e}")
    print(f"ok: --energy 0.6 gives ranks {sorted(set(cfg['rank_pattern'].values()) | {cfg['r']})}, "
          "equal to the lowrank codec applied")

    # the engine on base + LoRA (compressed raw from the LoRA, applied) vs on the applied lowrank
    # adapter; the norms are left at the base's in both (a LoRA cannot carry them)
    raw = os.path.join(work, "lora_raw.h5")
    run(a.deltakit, "compress", "--base", base, "--finetuned", out_e, "--out", raw)
    lora_applied = os.path.join(work, "lora_applied")
    run(a.deltakit, "apply", "--base", base, "--adapter", raw, "--out", lora_applied)
    La, _ = read_st(lora_applied)
    for name in order:
        if name not in deltas:
            check(np.array_equal(La[name][1], B[name][1]), f"{name}: untouched by the LoRA, yet changed")
    # same matrices as the applied lowrank adapter, base norms: write that reference and evaluate both
    ref = os.path.join(work, "ref_model")
    write_st(ref, {n: (Ap[n][1] if n in deltas else B[n][1]).astype(np.float32) for n in order}, base)
    tokens = os.path.join(work, "tokens.bin")
    vocab = B[[n for n in order if n.endswith("embed_tokens.weight")][0]][1].shape[0]
    np.random.default_rng(1).integers(0, vocab, 600).astype("<u4").tofile(tokens)
    ppl = [json.loads(run(a.deltakit, "eval", "--model", m, "--tokens", tokens, "--json").stdout.strip()
                      .splitlines()[-1])["perplexity"] for m in (lora_applied, ref)]
    check(abs(ppl[0] - ppl[1]) <= 1e-4 * ppl[1], f"perplexity on base + LoRA {ppl[0]} vs lowrank applied {ppl[1]}")
    print(f"ok: engine perplexity on base + exported LoRA {ppl[0]:.6f} = on the applied lowrank adapter {ppl[1]:.6f}")


def numpy_loras(B, order, work):
    rng = np.random.default_rng(11)
    q = [n for n in order if n.endswith("q_proj.weight")]
    emb = [n for n in order if n.endswith("embed_tokens.weight")][0]
    # 1: rslora, a rank_pattern regex for the MLP, an alpha_pattern for layer 0's v_proj, the embedding
    f1, mods = {}, [n for n in order if B[n][1].ndim == 2 and ("_proj" in n)]
    for name in mods:
        m = name[:-len(".weight")]
        r = 2 if re.search(r"mlp\.(up|down|gate)_proj$", m) else 4
        out_d, in_d = B[name][1].shape
        f1[m] = (0.05 * rng.standard_normal((r, in_d)), 0.05 * rng.standard_normal((out_d, r)))
    vocab, dim = B[emb][1].shape
    f1[emb[:-len(".weight")]] = (0.05 * rng.standard_normal((4, vocab)), 0.05 * rng.standard_normal((dim, 4)))
    cfg1 = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 4, "lora_alpha": 8, "use_rslora": True,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
                               "embed_tokens"],
            "rank_pattern": {"mlp\\.(up|down|gate)_proj": 2}, "alpha_pattern": {"layers.0.self_attn.v_proj": 3.0},
            "bias": "none", "fan_in_fan_out": False, "modules_to_save": None, "lora_dropout": 0.0}
    l1 = os.path.join(work, "lora_rs")
    write_lora(l1, cfg1, f1)
    # 2: fan_in_fan_out (weights stored [in, out], as GPT-2's Conv1D): square q_proj only
    f2 = {}
    for name in q:
        n_in = B[name][1].shape[0]
        f2[name[:-len(".weight")]] = (0.05 * rng.standard_normal((3, n_in)), 0.05 * rng.standard_normal((n_in, 3)))
    cfg2 = {"peft_type": "LORA", "r": 3, "lora_alpha": 6, "target_modules": "model\\.layers\\.\\d+\\.self_attn\\.q_proj",
            "fan_in_fan_out": True, "bias": "none"}
    l2 = os.path.join(work, "lora_fifo")
    write_lora(l2, cfg2, f2)
    return l1, l2


def case_import(a, work):
    base, ft = fixture(a, work)
    B, order = read_st(base)
    F, _ = read_st(ft)
    l1, l2 = numpy_loras(B, order, work)
    for lora in (l1, l2):
        _, deltas = lora_deltas(lora)
        want = {n: B[n][1] + deltas.get(n, 0.0) for n in order}
        # diff: |δ|_2 per tensor
        rows = {r["name"]: r for r in json.loads(run(a.deltakit, "diff", "--base", base, "--finetuned", lora,
                                                     "--json").stdout.strip().splitlines()[-1])["tensors"]}
        for n in order:
            l2n = float(np.linalg.norm(deltas[n])) if n in deltas else 0.0
            check(abs(rows[n]["l2"] - l2n) <= 1e-4 * max(l2n, 1e-6), f"diff {n}: {rows[n]['l2']} vs {l2n}")
        # compress raw + apply: base + scale·B·A
        ad, out = os.path.join(work, "raw.h5"), os.path.join(work, "applied")
        run(a.deltakit, "compress", "--base", base, "--finetuned", lora, "--out", ad, "--overwrite")
        run(a.deltakit, "apply", "--base", base, "--adapter", ad, "--out", out, "--overwrite")
        got, _ = read_st(out)
        for n in order:
            err = max_rel(got[n][1], want[n])
            check(err < 1e-6, f"{os.path.basename(lora)}: compress raw + apply, {n} off by {err:.2e}")
        # a lossy recipe takes scale·B·A itself: lowrank at the LoRA's rank is (nearly) exact
        ad2, out2 = os.path.join(work, "lr.h5"), os.path.join(work, "applied_lr")
        run(a.deltakit, "compress", "--base", base, "--finetuned", lora, "--recipe", "lowrank:rank=4", "--out", ad2,
            "--overwrite")
        run(a.deltakit, "apply", "--base", base, "--adapter", ad2, "--out", out2, "--overwrite")
        got, _ = read_st(out2)
        for n in deltas:
            err = float(np.max(np.abs(got[n][1] - want[n]))) / float(np.max(np.abs(deltas[n])))
            check(err < 1e-4, f"{os.path.basename(lora)}: lowrank:rank=4 of the LoRA, {n} off by {err:.2e} of |d|")
        print(f"ok: {os.path.basename(lora)}: diff, compress raw / lowrank + apply equal numpy's W + scale·B·A")
    # merge: task arithmetic of the LoRA and a checkpoint, weights 0.5 each
    cfg = os.path.join(work, "merge.yml")
    open(cfg, "w").write(f"merge_method: task_arithmetic\nbase_model: {base}\nmodels:\n"
                         f"  - model: {l1}\n    parameters: {{weight: 0.5}}\n"
                         f"  - model: {ft}\n    parameters: {{weight: 0.5}}\ndtype: float32\n")
    out = os.path.join(work, "merged")
    run(a.deltakit, "merge", cfg, "--out", out)
    got, _ = read_st(out)
    _, deltas = lora_deltas(l1)
    for n in order:
        want = B[n][1] + 0.5 * deltas.get(n, 0.0) + 0.5 * (F[n][1] - B[n][1])
        err = max_rel(got[n][1], want)
        check(err < 1e-6, f"merge {n} off by {err:.2e}")
    print("ok: merge task_arithmetic over a LoRA and a checkpoint equals numpy")
    # TIES over a LoRA, a full fine-tune and a deltakit adapter (of the second LoRA): trims and
    # sign votes on the LoRA's ΔW itself, which PEFT's add_weighted_adapter cannot do
    ad = os.path.join(work, "fifo.h5")
    run(a.deltakit, "compress", "--base", base, "--finetuned", l2, "--recipe", "bitdelta", "--out", ad)
    ad_applied = os.path.join(work, "fifo_applied")
    run(a.deltakit, "apply", "--base", base, "--adapter", ad, "--out", ad_applied)
    Aa, _ = read_st(ad_applied)
    cfg = os.path.join(work, "ties.yml")
    open(cfg, "w").write(f"merge_method: ties\nbase_model: {base}\nmodels:\n"
                         f"  - model: {l1}\n    parameters: {{weight: 1.0, density: 0.5}}\n"
                         f"  - model: {ft}\n    parameters: {{weight: 0.7, density: 0.3}}\n"
                         f"  - model: {ad}\n    parameters: {{weight: 0.5, density: 0.6}}\ndtype: float32\n")
    out = os.path.join(work, "ties_out")
    run(a.deltakit, "merge", cfg, "--out", out)
    got, _ = read_st(out)
    off, total = 0, 0
    for n in order:
        # deltakit forms each δ = θ_i − θ_b in fp32 (the LoRA's θ_i = base + ΔW in fp32), and a
        # trim ranks those values: so does the reference (bitdelta's equal magnitudes make ties
        # that fp32 rounding orders)
        b32 = B[n][1].astype(np.float32)
        f32 = lambda x: np.asarray(x, dtype=np.float32)
        ds = [((b32 + f32(deltas.get(n, 0.0))) - b32).astype(np.float64), (f32(F[n][1]) - b32).astype(np.float64),
              (f32(Aa[n][1]) - b32).astype(np.float64)]
        wds = [w * trim(d, dens) for d, w, dens in zip(ds, (1.0, 0.7, 0.5), (0.5, 0.3, 0.6))]
        want = mix(B[n][1], wds, [1.0, 0.7, 0.5], True, True, 1.0)
        bad_n = int(np.count_nonzero(np.abs(got[n][1] - want) > 1e-5 * (np.abs(want).max() + 1e-3)))
        off += bad_n
        total += want.size
    check(off <= 1e-4 * total, f"ties over LoRA + checkpoint + adapter: {off} of {total} entries differ from numpy")
    print(f"ok: ties over a LoRA, a checkpoint and a bitdelta adapter equals numpy ({off} of {total} entries "
          "differ: ΔW's sgemm rounding may move one across a trim's cut)")


def case_bad(a, work):
    base, _ = fixture(a, work)
    B, order = read_st(base)
    l1, _ = numpy_loras(B, order, work)
    cfg0 = json.load(open(os.path.join(l1, "adapter_config.json")))
    factors_tensors = read_st(l1)[0]

    def variant(tag, cfg_edit=None, rename=None, drop=None, shape_of=None):
        d = os.path.join(work, "bad_" + tag)
        shutil.copytree(l1, d)
        cfg = json.loads(json.dumps(cfg0))
        if cfg_edit:
            cfg_edit(cfg)
        json.dump(cfg, open(os.path.join(d, "adapter_config.json"), "w"))
        if rename or drop or shape_of:
            tensors = {}
            for name, (_, arr) in factors_tensors.items():
                if drop and name == drop:
                    continue
                if shape_of and name == shape_of:
                    arr = arr[:, :-1]
                tensors[rename[1] if rename and name == rename[0] else name] = arr.astype(np.float32)
            os.remove(os.path.join(d, "adapter_model.safetensors"))
            header, blobs, off = {}, [], 0
            for name, arr in tensors.items():
                raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
                header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
                blobs.append(raw)
                off += len(raw)
            h = json.dumps(header).encode()
            h += b" " * ((8 - len(h) % 8) % 8)
            open(os.path.join(d, "adapter_model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h +
                                                                           b"".join(blobs))
        return d

    q0 = PREFIX + "model.layers.0.self_attn.q_proj"
    cases = [
        ("r0", dict(cfg_edit=lambda c: c.update(r=0)), "r is 0"),
        ("dora", dict(cfg_edit=lambda c: c.update(use_dora=True)), "DoRA"),
        ("modules_to_save", dict(cfg_edit=lambda c: c.update(modules_to_save=["lm_head"])), "modules_to_save"),
        ("not_lora", dict(cfg_edit=lambda c: c.update(peft_type="IA3")), "only LoRA"),
        ("rank_mismatch", dict(cfg_edit=lambda c: c.update(rank_pattern={})), "rank"),
        ("untargeted", dict(cfg_edit=lambda c: c.update(target_modules=["q_proj"])), "target_modules"),
        ("missing_module", dict(rename=(q0 + ".lora_A.weight", PREFIX + "model.layers.9.self_attn.q_proj.lora_A.weight")),
         "lora_B but no lora_A"),
        ("unpaired", dict(rename=(q0 + ".lora_A.weight", PREFIX + "model.layers.0.self_attn.x_proj.lora_A.weight"),
                                drop=q0 + ".lora_B.weight"), "no lora_B"),
        ("shape", dict(shape_of=q0 + ".lora_A.weight"), "delta"),
        ("bad_regex", dict(cfg_edit=lambda c: c.update(rank_pattern={"(": 2})), "regular expression"),
    ]
    for tag, kw, needle in cases:
        d = variant(tag, **kw)
        for argv in (["diff", "--base", base, "--finetuned", d],
                     ["compress", "--base", base, "--finetuned", d, "--out", os.path.join(work, tag + ".h5")]):
            p = run(a.deltakit, *argv, ok=False)
            lines = p.stderr.strip().splitlines()
            check(p.returncode != 0, f"{tag}: {argv[0]} exited 0")
            check(len(lines) == 1 and d in lines[0] and needle in lines[0],
                  f"{tag}: {argv[0]} said {p.stderr!r}, wanted one line naming {d} with '{needle}'")
            check(not os.path.exists(os.path.join(work, tag + ".h5")), f"{tag}: an output was written")
        print(f"ok: {tag}: {lines[0]}")
    # no weights file
    d = variant("ghost", rename=(q0 + ".lora_A.weight", PREFIX + "model.layers.0.self_attn.z_proj.lora_A.weight"))
    os.rename(os.path.join(d, "adapter_model.safetensors"), os.path.join(d, "x"))
    p = run(a.deltakit, "diff", "--base", base, "--finetuned", d, ok=False)
    check(p.returncode != 0 and "adapter_model.safetensors" in p.stderr, f"no weights file: {p.stderr!r}")
    print(f"ok: no weights: {p.stderr.strip()}")
    d = variant("ghost_module", cfg_edit=lambda c: c.update(target_modules=None))
    tensors = {k: v[1].astype(np.float32) for k, v in read_st(l1)[0].items()}
    tensors = {k.replace("self_attn.q_proj", "self_attn.qq_proj"): v for k, v in tensors.items()}
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(os.path.join(d, "adapter_model.safetensors"), "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    p = run(a.deltakit, "diff", "--base", base, "--finetuned", d, ok=False)
    check(p.returncode != 0 and "qq_proj" in p.stderr and "has no tensor" in p.stderr, f"ghost module: {p.stderr!r}")
    print(f"ok: a module the base lacks: {p.stderr.strip()}")


def case_mpi(a, work):
    base, ft = fixture(a, work)
    outs = []
    for n, threads in ((1, 1), (2, 1), (3, 1), (1, 2)):
        out = os.path.join(work, f"lora_n{n}_t{threads}")
        run(a.mpirun, "--oversubscribe", "-n", str(n), a.deltakit, "export-lora", "--base", base, "--finetuned", ft,
            "--energy", "0.5", "--threads", str(threads), "--out", out)
        outs.append(out)
    for f in ("adapter_model.safetensors", "adapter_config.json"):
        ref = open(os.path.join(outs[0], f), "rb").read()
        for o in outs[1:]:
            check(open(os.path.join(o, f), "rb").read() == ref, f"{f} differs between mpirun -n 1 and {o}")
    print("ok: export-lora under mpirun -n 1, 2, 3 (and 1 vs 2 threads) writes the same bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--case", required=True, choices=["export", "import", "bad", "mpi"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="deltakit_lora_") as work:
        globals()["case_" + a.case](a, work)


if __name__ == "__main__":
    main()
