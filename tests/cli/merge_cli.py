#!/usr/bin/env python3
"""`deltakit merge` end to end, one case per CTest test:
  reference  every method on an f32 fixture (base + 3 fine-tunes) against numpy written from
             algorithms.md §8, including per-model weights, a layer gradient and a name filter; the
             deterministic methods to 1e-6, DARE/DELLA by their statistics (kept share, L1 kept)
  adapters   merging adapters (raw and bitdelta) gives the bytes of merging the checkpoints those
             adapters apply to
  layout     output loads like the base: tensor names and order, side files, merge.yml and the
             card; --dtype bfloat16 casts every tensor and config.json's torch_dtype; a grown
             vocabulary merges the base's rows with a warning, any other shape change is refused
  mpi        mpirun -n 1, 2, 3 (and 1 vs 2 threads) write byte-identical sharded outputs
  methods    model_stock, sce, karcher, multislerp, nearswap, arcee_fusion and passthrough against
             numpy written from mergekit's torch code
  slices     layer stacking: a passthrough frankenmerge (every tensor its source's, config.json's
             depth, the engine loads it), a gradient slerp over slices (numpy; the same bytes as
             models:), bad slices
  examples   the shapes of mergekit's examples/*.yml on fixtures: each merges with the right depth
"""
import argparse, json, os, struct, subprocess, sys, tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import MPI_ENV as ENV  # noqa: E402


def run(*argv, ok=True):
    p = subprocess.run(list(argv), capture_output=True, text=True, env=ENV)
    if ok and p.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} exited {p.returncode}\n{p.stderr}")
    return p


def read_st(folder):
    out, order = {}, []
    files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))
    for f in files:
        data = open(os.path.join(folder, f), "rb").read()
        n = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + n])
        for name, e in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0]):
            b, end = e["data_offsets"]
            raw = data[8 + n + b:8 + n + end]
            if e["dtype"] == "F32":
                arr = np.frombuffer(raw, dtype="<f4")
            elif e["dtype"] == "F16":
                arr = np.frombuffer(raw, dtype="<f2")
            elif e["dtype"] == "BF16":
                arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                raise ValueError(e["dtype"])
            out[name] = (e["dtype"], arr.reshape(e["shape"]).astype(np.float64))
            order.append(name)
    return out, order


def write_st(folder, tensors, config_from, dtype="F32"):
    """A checkpoint (F32 or BF16, rounded to nearest even) with the tensors in the given order,
    side files copied from config_from."""
    os.makedirs(folder, exist_ok=True)
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        f = np.ascontiguousarray(arr, dtype="<f4")
        if dtype == "BF16":
            u = f.view(np.uint32).astype(np.uint64)
            b = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
        else:
            b = f.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(folder, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    for side in os.listdir(config_from):
        if not side.endswith(".safetensors") and not side.endswith(".json.index"):
            with open(os.path.join(config_from, side), "rb") as src, open(os.path.join(folder, side), "wb") as dst:
                dst.write(src.read())


def fixture(a, work, n_models=3, dtype="f32"):
    base, ft0 = os.path.join(work, "base"), os.path.join(work, "ft0")
    run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft0, "--dtype", dtype, "--size", "tiny")
    fts = [ft0]
    if dtype != "f32":
        return base, fts
    B, _ = read_st(base)
    rng = np.random.default_rng(5)
    for i in range(1, n_models):
        t = {k: v + rng.normal(0, 0.02 * (np.abs(v).mean() + 1e-3), v.shape) for k, (_, v) in B.items()}
        fts.append(os.path.join(work, f"ft{i}"))
        write_st(fts[-1], t, base)
    return base, fts


def yaml(path, method, base, models, params="", extra=""):
    lines = [f"merge_method: {method}"]
    if base:
        lines.append(f"base_model: {base}")
    lines.append("models:")
    for m, p in models:
        lines.append(f"  - model: {m}")
        if p:
            lines.append(f"    parameters: {p}")
    if params:
        lines.append(f"parameters: {params}")
    if extra:
        lines.append(extra)
    open(path, "w").write("\n".join(lines) + "\n")
    return path


def layers_of(names):
    return 1 + max(int(n.split("layers.")[1].split(".")[0]) for n in names if "layers." in n)


def position(name, L):  # mergekit v0.1.4's t: i/(L-1), 1 for a one-layer model, 0 outside the layers
    if "layers." in name:
        return int(name.split("layers.")[1].split(".")[0]) / (L - 1) if L > 1 else 1.0
    return 0.0


def trim(d, density):  # magnitude: keep floor(density·n) largest |d|, ties to the lower index
    flat = d.ravel()
    k = int(density * flat.size)
    order = np.lexsort((np.arange(flat.size), -np.abs(flat)))
    keep = np.zeros(flat.size, bool)
    keep[order[:k]] = True
    return np.where(keep, flat, 0).reshape(d.shape)


def breadcrumbs(d, density, gamma):
    flat = d.ravel()
    n = flat.size
    target, top = int(density * n), int(gamma * n)
    bot = n - target - top
    if bot < 0:
        top, bot = top + bot, 0
    order = np.lexsort((np.arange(n), -np.abs(flat)))
    keep = np.zeros(n, bool)
    keep[order[top:top + target]] = True
    return np.where(keep, flat, 0).reshape(d.shape)


def mix(base, wds, ws, consensus, normalize, lam):
    wds = np.stack(wds)
    ws = np.array(ws).reshape((-1,) + (1,) * base.ndim)
    if consensus:
        major = np.where(wds.sum(0) >= 0, 1, -1)
        mask = np.sign(wds) == major
        mixed, div = (wds * mask).sum(0), (ws * mask).sum(0)
        div = np.where(div == 0, 1, div)
    else:
        mixed, div = wds.sum(0), ws.sum()
        div = div if abs(div) >= 1e-8 else 1
    return base + lam * (mixed / div if normalize else mixed)


def slerp(t, v0, v1):
    a, b = v0.ravel(), v1.ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    d = (a / (na if na > 1e-8 else 1)) @ (b / (nb if nb > 1e-8 else 1))
    if abs(d) > 0.9995:
        return (1 - t) * v0 + t * v1
    th = np.arccos(d)
    return (np.sin(th - t * th) * v0 + np.sin(t * th) * v1) / np.sin(th)


def nuslerp(t, v0, v1, how):
    """mergekit's nuslerp on numpy arrays: vectors are the whole tensor, its rows or its columns."""
    a, b = (v0.reshape(1, -1), v1.reshape(1, -1)) if how == "flatten" or v0.ndim == 1 else \
        (v0, v1) if how == "rows" else (v0.T, v1.T)
    a, b = a.astype(np.float64), b.astype(np.float64)
    ua = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-7)
    ub = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-7)
    th = np.arccos(np.clip((ua * ub).sum(-1, keepdims=True), -1, 1))
    s = np.sin(th)
    lin = np.abs(s) < 1e-8
    r = np.where(lin, (1 - t) * a + t * b, (np.sin((1 - t) * th) * a + np.sin(t * th) * b) / np.where(lin, 1, s))
    r = r.T if how == "columns" and v0.ndim > 1 else r
    return r.reshape(v0.shape)


def case_reference(a, work):
    base, fts = fixture(a, work)
    B, names = read_st(base)
    F = [read_st(f)[0] for f in fts]
    L = layers_of(names)
    # weights: a scalar, a gradient over the layers, a filtered rule; densities likewise
    params = ["{weight: 0.6, density: 0.5}",
              "{weight: [0.2, 0.8], density: [{filter: mlp, value: 0.3}, {value: 0.7}]}",
              "{weight: -0.3, density: 0.4}"]

    def w_of(i, name):
        pos = position(name, L)
        return [0.6, 0.2 + 0.6 * pos, -0.3][i]

    def dens_of(i, name):
        return [0.5, 0.3 if "mlp" in name else 0.7, 0.4][i]

    worst = {}

    def check(method, want_fn, glob="", extra=""):
        cfg = yaml(os.path.join(work, method + ".yml"), method, base, list(zip(fts, params)), glob, extra)
        out = os.path.join(work, "out-" + method)
        run(a.deltakit, "merge", cfg, "--out", out)
        got, order = read_st(out)
        if order != names:
            sys.exit(f"FAIL: {method}: tensor order {order[:3]}... differs from the base's")
        err = 0.0
        for n in names:
            want = want_fn(n)
            err = max(err, float(np.max(np.abs(got[n][1] - want) / (np.abs(want) + 1e-3))))
        worst[method] = err
        if err > 1e-5:
            sys.exit(f"FAIL: {method} differs from the numpy reference by {err:.2e}")

    delta = lambda i, n: F[i][n][1] - B[n][1]
    check("task_arithmetic", lambda n: mix(B[n][1], [w_of(i, n) * delta(i, n) for i in range(3)],
                                           [w_of(i, n) for i in range(3)], False, False, 0.8), "{lambda: 0.8}")
    check("ties", lambda n: mix(B[n][1], [w_of(i, n) * trim(delta(i, n), dens_of(i, n)) for i in range(3)],
                                [w_of(i, n) for i in range(3)], True, True, 1.0))
    check("magnitude_prune", lambda n: mix(B[n][1], [w_of(i, n) * trim(delta(i, n), dens_of(i, n)) for i in range(3)],
                                           [w_of(i, n) for i in range(3)], False, False, 1.0))
    check("breadcrumbs_ties", lambda n: mix(B[n][1], [w_of(i, n) * breadcrumbs(delta(i, n), dens_of(i, n), 0.05) for i in range(3)],
                                            [w_of(i, n) for i in range(3)], True, True, 1.0), "{gamma: 0.05, normalize: true}")
    check("linear", lambda n: sum(w_of(i, n) * F[i][n][1] for i in range(3)) / sum(w_of(i, n) for i in range(3)))
    # slerp: the base and one model, t over the layers
    cfg = yaml(os.path.join(work, "slerp.yml"), "slerp", base, [(fts[0], "")], "{t: [0.0, 1.0]}")
    run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "out-slerp"))
    got, _ = read_st(os.path.join(work, "out-slerp"))
    for n in names:
        want = slerp(position(n, L), B[n][1], F[0][n][1])
        if np.max(np.abs(got[n][1] - want)) > 1e-5 * (np.abs(want).max() + 1e-3):
            sys.exit(f"FAIL: slerp of {n} differs from numpy")
    # nuslerp: two task vectors, t = w1/(w0 + w1), whole tensors, rows and columns
    for how, extra in (("flatten", ""), ("rows", "{nuslerp_flatten: false}"),
                       ("columns", "{nuslerp_flatten: false, nuslerp_row_wise: true}")):
        cfg = yaml(os.path.join(work, f"nuslerp-{how}.yml"), "nuslerp", base,
                   [(fts[0], "{weight: 0.6}"), (fts[1], "{weight: 0.2}")], extra)
        run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "out-nuslerp-" + how))
        got, _ = read_st(os.path.join(work, "out-nuslerp-" + how))
        for n in names:
            want = B[n][1] + nuslerp(0.25, delta(0, n), delta(1, n), how)
            if np.max(np.abs(got[n][1] - want)) > 1e-5 * (np.abs(want).max() + 1e-3):
                sys.exit(f"FAIL: nuslerp ({how}) of {n} differs from numpy")
    # DARE: kept share ≈ density and the L1 norm of each task vector kept (mergekit's rescale) —
    # seen through a one-model dare_linear, weight 1: out − base is the rescaled sparse delta
    cfg = yaml(os.path.join(work, "dare.yml"), "dare_linear", base, [(fts[0], "{weight: 1.0, density: 0.3}")])
    run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "out-dare"))
    got, _ = read_st(os.path.join(work, "out-dare"))
    big = max(names, key=lambda n: B[n][1].size)
    d_out = (got[big][1] - B[big][1]).astype(np.float32)
    d_in = delta(0, big)
    kept = np.count_nonzero(d_out) / d_out.size
    ratio = np.abs(d_out).sum() / np.abs(d_in).sum()
    print(f"dare_linear density 0.3 on {big}: kept {kept:.3f}, L1 kept {ratio:.4f}")
    if not (0.27 < kept < 0.33 and abs(ratio - 1) < 1e-3):
        sys.exit("FAIL: DARE's kept share or L1 rescale is off")
    # the papers' 1/(1-p) instead: rescale_norm: inverse
    cfg = yaml(os.path.join(work, "dare-inv.yml"), "dare_linear", base, [(fts[0], "{weight: 1.0, density: 0.3}")],
               "", "rescale_norm: inverse")
    run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "out-dare-inv"))
    inv, _ = read_st(os.path.join(work, "out-dare-inv"))
    d_inv = inv[big][1] - B[big][1]
    nz = d_inv != 0
    if not np.allclose(d_inv[nz], d_in[nz] / 0.3, rtol=1e-4, atol=1e-6) or not np.array_equal(nz, d_out != 0):
        sys.exit("FAIL: rescale_norm inverse is not 1/density on the same mask")
    for m in ("dare_ties", "della", "della_linear", "breadcrumbs"):
        cfg = yaml(os.path.join(work, m + ".yml"), m, base, list(zip(fts, params)), "{epsilon: 0.1}" if "della" in m else "")
        run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "out-" + m))
    print("worst relative error per method:", {k: f"{v:.1e}" for k, v in worst.items()})
    print("ok: task_arithmetic, ties, magnitude_prune, breadcrumbs_ties, linear, slerp, nuslerp match numpy; DARE statistics hold")


# --- the methods mergekit added after TIES/DARE, written from its torch code (numpy, float64) ----
def np_model_stock(w0, ws, filter_wise):
    shape = w0.shape
    if filter_wise:
        w0v = w0.reshape(1, -1) if w0.ndim == 1 else w0.reshape(-1, shape[-1])
        wsv = [w.reshape(w0v.shape) for w in ws]
    else:
        w0v, wsv = w0.reshape(-1), [w.reshape(-1) for w in ws]
    off = [w - w0v for w in wsv]
    cos = []
    for i in range(len(off)):
        for j in range(i + 1, len(off)):
            npr = np.linalg.norm(off[i], axis=-1) * np.linalg.norm(off[j], axis=-1)
            cos.append(np.clip((off[i] * off[j]).sum(-1) / np.maximum(npr, 1e-6), -1, 1))
    c = np.mean(np.stack(cos), axis=0)
    c = c[..., None] if filter_wise else c
    N = len(ws)
    t = N * c / (1 + (N - 1) * c)
    return (t * (sum(wsv) / N) + (1 - t) * w0v).reshape(shape)


def np_sce(base, ms, topk):
    tv = np.stack([m - base for m in ms])
    if topk < 1:
        var = tv.var(axis=0)
        k = int(np.count_nonzero(var) * topk)
        mask = np.zeros(var.size)
        if k > 0:
            order = np.lexsort((np.arange(var.size), -var.reshape(-1)))  # largest first, ties to the lower index
            mask[order[:k]] = 1
        tv = tv * mask.reshape(var.shape)[None]
    majority = np.where(tv.sum(0) >= 0, 1.0, -1.0)
    erase = (np.sign(tv) == majority).astype(np.float64)
    w = np.mean(tv.reshape(len(ms), -1) ** 2, axis=1)
    w = np.ones_like(w) / len(w) if abs(w.sum()) < 1e-6 else w / w.sum()
    ew = w.reshape((-1,) + (1,) * (tv.ndim - 1)) * erase
    return base + (tv * ew).sum(0) / np.maximum(ew.sum(0), 1e-6)


def np_multislerp(ms, weights, base, eps=1e-8):
    t = np.stack(ms) - (base if base is not None else 0)
    flat = t.reshape(len(ms), -1)
    w = np.array(weights) / np.sum(weights)
    norms = np.linalg.norm(flat, axis=-1, keepdims=True)
    unit = flat / (norms + eps)
    mean = (unit * w[:, None]).sum(0)
    mean = mean / np.linalg.norm(mean)
    tangent = unit - (unit * mean).sum(-1, keepdims=True) * mean
    tr = (tangent * w[:, None]).sum(0)
    tn = np.linalg.norm(tr) + eps
    res = (mean * np.cos(tn) + tr * np.sin(tn) / tn) * (norms[:, 0] * w).sum()
    return res.reshape(ms[0].shape) + (base if base is not None else 0)


def np_karcher(ts, max_iter=10, tol=1e-5):
    alphas = [1.0 / len(ts)] * len(ts)
    norms = [np.linalg.norm(t) for t in ts]
    units = [t / n if n else np.zeros_like(t) for t, n in zip(ts, norms)]
    valid = [i for i, n in enumerate(norms) if n > tol]
    na = [alphas[i] / sum(alphas[j] for j in valid) for i in valid]
    vu = [units[i] for i in valid]
    u = sum(a * x for a, x in zip(na, vu))
    u = vu[0].copy() if np.linalg.norm(u) < tol else u / np.linalg.norm(u)
    for _ in range(max_iter):
        T = np.zeros_like(u)
        for a, x in zip(na, vu):
            d = np.clip(np.sum(u * x), -1, 1)
            th = np.arccos(d)
            if th < tol:
                continue
            T += a * (th / np.sin(th)) * (x - d * u)
        nT = np.linalg.norm(T)
        if nT < tol:
            break
        u = np.cos(nT) * u + np.sin(nT) * (T / nT)
        if np.linalg.norm(u) > tol:
            u = u / np.linalg.norm(u)
    return sum(a * n for a, n in zip(alphas, norms)) * u


def np_nearswap(a, b, t):
    w = np.clip(t / np.maximum(np.abs(a - b), 1e-6), 0, 1)
    return w * b + (1 - w) * a


def np_arcee_fusion(base, model):
    def softmax(x):
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    p, q = softmax(model) + 1e-8, softmax(base) + 1e-8
    imp = np.abs(model - base) * np.sum(p * np.log(p / q), axis=-1)[..., None]
    s = np.sort(imp.reshape(-1))
    qt = lambda x: s[int(x * (s.size - 1))]
    thr = qt(0.5) + 1.5 * (qt(0.75) - qt(0.25))
    return base + (model - base) * (imp >= thr)


def case_methods(a, work):
    base, fts = fixture(a, work)
    B, names = read_st(base)
    F = [read_st(f)[0] for f in fts]
    worst = {}

    def check(method, models, want_fn, params="", with_base=True, tol=1e-5):
        cfg = yaml(os.path.join(work, method + ".yml"), method, base if with_base else "", models, params)
        out = os.path.join(work, "out-" + method + str(len(worst)))
        run(a.deltakit, "merge", cfg, "--out", out)
        got, order = read_st(out)
        if order != names:
            sys.exit(f"FAIL: {method}: tensor order differs from the base's")
        err = 0.0
        for n in names:
            want = want_fn(n)
            err = max(err, float(np.max(np.abs(got[n][1] - want)) / (np.abs(want).max() + 1e-3)))
        worst[f"{method} {params}".strip()] = err
        if err > tol:
            sys.exit(f"FAIL: {method} {params} differs from the numpy reference by {err:.2e}")

    b = lambda n: B[n][1]
    f = lambda i, n: F[i][n][1]
    three = [(x, "") for x in fts]
    check("model_stock", three, lambda n: np_model_stock(b(n), [f(i, n) for i in range(3)], False))
    check("model_stock", three, lambda n: np_model_stock(b(n), [f(i, n) for i in range(3)], True),
          "{filter_wise: true}")
    check("sce", three, lambda n: np_sce(b(n), [f(i, n) for i in range(3)], 1.0))
    check("sce", three, lambda n: np_sce(b(n), [f(i, n) for i in range(3)], 0.3), "{select_topk: 0.3}")
    check("karcher", three, lambda n: np_karcher([b(n)] + [f(i, n) for i in range(3)]))
    check("karcher", three, lambda n: np_karcher([f(i, n) for i in range(3)], 4, 1e-3), "{max_iter: 4, tol: 0.001}",
          with_base=False)
    ws = [0.5, 0.3, 0.2]
    weighted = [(x, f"{{weight: {w}}}") for x, w in zip(fts, ws)]
    check("multislerp", weighted, lambda n: np_multislerp([f(i, n) for i in range(3)], ws, b(n)))
    check("multislerp", weighted, lambda n: np_multislerp([f(i, n) for i in range(3)], ws, None), with_base=False)
    check("nearswap", [(fts[0], "")], lambda n: np_nearswap(b(n), f(0, n), 0.01), "{t: 0.01}")
    check("arcee_fusion", [(fts[1], "")], lambda n: np_arcee_fusion(b(n), f(1, n)))
    check("passthrough", [(fts[2], "{scale: 0.5}")], lambda n: 0.5 * f(2, n), with_base=False)
    print("worst relative error per method:", {k: f"{v:.1e}" for k, v in worst.items()})
    print("ok: model_stock, sce, karcher, multislerp, nearswap, arcee_fusion, passthrough match numpy")


def deep_fixture(a, work, layers=4, n_models=2):
    """A base of `layers` layers grown from the tiny fixture (its layers repeated with noise) and
    fine-tunes of it: (base, [fine-tunes], tensors of each)."""
    base2, _ = fixture(a, work, n_models=1)
    B2, names2 = read_st(base2)
    rng = np.random.default_rng(7)
    tensors = {}
    for n in names2:
        if "layers." not in n:
            tensors[n] = B2[n][1]
    for l in range(layers):
        for n in names2:
            if n.startswith("model.layers.0."):
                src = n.replace("layers.0.", f"layers.{l % 2}.")
                tensors[n.replace("layers.0.", f"layers.{l}.")] = B2[src][1] + rng.normal(0, 0.01, B2[src][1].shape)
    base = os.path.join(work, "base4")
    write_st(base, tensors, base2)
    cfg = json.load(open(os.path.join(base, "config.json")))
    cfg["num_hidden_layers"] = layers
    json.dump(cfg, open(os.path.join(base, "config.json"), "w"))
    fts, all_t = [], [tensors]
    for i in range(n_models):
        t = {k: v + rng.normal(0, 0.02 * (np.abs(v).mean() + 1e-3), v.shape) for k, v in tensors.items()}
        fts.append(os.path.join(work, f"ft4_{i}"))
        write_st(fts[-1], t, base)
        all_t.append(t)
    return base, fts, all_t


def slices_yaml(path, method, slices, base="", params="", extra=""):
    lines = ["slices:"]
    for sources in slices:
        lines.append("  - sources:")
        for m, r, p in sources:
            lines.append(f"      - model: {m}")
            lines.append(f"        layer_range: [{r[0]}, {r[1]}]")
            if p:
                lines.append(f"        parameters: {p}")
    lines.append(f"merge_method: {method}")
    if base:
        lines.append(f"base_model: {base}")
    if params:
        lines.append("parameters:\n" + params)
    if extra:
        lines.append(extra)
    open(path, "w").write("\n".join(lines) + "\n")
    return path


def case_slices(a, work):
    base, fts, T = deep_fixture(a, work)
    Bt, A, Bm = T
    # a frankenmerge: A's layers 0-2 then Bm's layers 1-3, six in all
    cfg = slices_yaml(os.path.join(work, "frank.yml"), "passthrough", [[(fts[0], (0, 3), "")], [(fts[1], (1, 4), "")]])
    out = os.path.join(work, "frank")
    run(a.deltakit, "merge", cfg, "--out", out)
    got, order = read_st(out)
    layer_of = [(A, 0), (A, 1), (A, 2), (Bm, 1), (Bm, 2), (Bm, 3)]
    for n in order:
        if "layers." in n:
            l = int(n.split("layers.")[1].split(".")[0])
            src, sl = layer_of[l]
            want = src[n.replace(f"layers.{l}.", f"layers.{sl}.")]
        else:
            want = (A if "embed" in n else Bm)[n]
        if not np.array_equal(got[n][1], want.astype(np.float32)):
            sys.exit(f"FAIL: frankenmerge tensor {n} is not its source's")
    if sorted({int(n.split("layers.")[1].split(".")[0]) for n in order if "layers." in n}) != list(range(6)):
        sys.exit("FAIL: the stacked model does not have layers 0-5")
    if json.load(open(os.path.join(out, "config.json")))["num_hidden_layers"] != 6:
        sys.exit("FAIL: config.json's num_hidden_layers is not 6")
    tokens = os.path.join(work, "tok.bin")
    np.random.default_rng(2).integers(0, 256, 300).astype("<u4").tofile(tokens)
    ppl = json.loads(run(a.deltakit, "eval", "--model", out, "--tokens", tokens, "--json").stdout.strip()
                     .splitlines()[-1])["perplexity"]
    print(f"ok: passthrough frankenmerge of 3 + 3 layers: every tensor its source's, 6 layers, evaluates "
          f"(perplexity {ppl:.1f})")
    out2 = os.path.join(work, "frank-n2")
    run(a.mpirun, "--oversubscribe", "-n", "2", a.deltakit, "merge", cfg, "--out", out2, "--max-shard-size", "40KB")
    run(a.deltakit, "merge", cfg, "--out", out + "-sharded", "--max-shard-size", "40KB")
    if not same_output(out2, out + "-sharded"):
        sys.exit("FAIL: the frankenmerge under mpirun -n 2 differs from one rank")
    print("ok: the frankenmerge under mpirun -n 2 is the same bytes")
    # slerp over slices with a layer gradient per filter: numpy, and the same bytes as `models:`
    grad = ("  t:\n    - filter: self_attn\n      value: [0, 0.5, 0.3, 0.7, 1]\n"
            "    - filter: mlp\n      value: [1, 0.5, 0.7, 0.3, 0]\n    - value: 0.5")
    cfg = slices_yaml(os.path.join(work, "gs.yml"), "slerp", [[(base, (0, 4), ""), (fts[0], (0, 4), "")]], base, grad)
    out = os.path.join(work, "gs")
    run(a.deltakit, "merge", cfg, "--out", out)
    got, order = read_st(out)

    def grad_t(n, pos):
        vals = [0, 0.5, 0.3, 0.7, 1] if "self_attn" in n else [1, 0.5, 0.7, 0.3, 0] if "mlp" in n else [0.5]
        if len(vals) == 1:
            return vals[0]
        x = pos * (len(vals) - 1)
        i = min(int(np.floor(x)), len(vals) - 2)
        return vals[i] * (1 - (x - i)) + vals[i + 1] * (x - i)
    for n in order:
        pos = int(n.split("layers.")[1].split(".")[0]) / 3 if "layers." in n else 0.0
        want = slerp(grad_t(n, pos), Bt[n], A[n])
        if np.max(np.abs(got[n][1] - want)) > 1e-5 * (np.abs(want).max() + 1e-3):
            sys.exit(f"FAIL: gradient slerp over slices, {n} differs from numpy")
    cfg2 = os.path.join(work, "gs-models.yml")
    open(cfg2, "w").write(f"models:\n  - model: {base}\n  - model: {fts[0]}\nmerge_method: slerp\n"
                          f"base_model: {base}\nparameters:\n{grad}\n")
    run(a.deltakit, "merge", cfg2, "--out", os.path.join(work, "gs-models"))
    if not same_output(out, os.path.join(work, "gs-models")):
        sys.exit("FAIL: slerp over one whole-model slice differs from the models: syntax")
    print("ok: gradient slerp over slices equals numpy and the models: syntax, byte for byte")
    # bad slices: one line each
    for tag, sl, needle in (("past", [[(fts[0], (2, 6), "")]], "past its layers"),
                            ("uneven", [[(base, (0, 2), ""), (fts[0], (0, 3), "")]], "same number of layers")):
        cfg = slices_yaml(os.path.join(work, tag + ".yml"), "passthrough" if tag == "past" else "slerp", sl, base,
                          "  t: 0.5")
        p = run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "bad-" + tag), ok=False)
        if p.returncode == 0 or needle not in p.stderr or len(p.stderr.strip().splitlines()) != 1:
            sys.exit(f"FAIL: slices {tag}: {p.stderr!r}")
        print(f"ok: {tag}: {p.stderr.strip()}")


def case_examples(a, work):
    """The shapes of mergekit's examples/*.yml (methods, gradients, filters, slices, dtypes), each
    run on fixtures: every one merges, and the output has the layers it should."""
    base, fts, _ = deep_fixture(a, work, n_models=3)
    m1, m2, m3 = fts
    examples = {
        "arcee_fusion": f"models:\n  - model: {m1}\n  - model: {m2}\nmerge_method: arcee_fusion\n"
                        f"base_model: {m1}\ndtype: bfloat16\n",
        "bio-merge": f"models:\n  - model: {m1}\n    parameters: {{density: 0.5, weight: 0.5}}\n"
                     f"  - model: {m2}\n    parameters: {{density: 0.5, weight: 0.5}}\nmerge_method: ties\n"
                     f"base_model: {base}\nparameters:\n  normalize: false\n  int8_mask: true\ndtype: float16\n",
        "gradient-slerp": f"slices:\n  - sources:\n      - model: {m1}\n        layer_range: [0, 4]\n"
                          f"      - model: {m2}\n        layer_range: [0, 4]\nmerge_method: slerp\nbase_model: {m1}\n"
                          "parameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 0.3, 0.7, 1]\n"
                          "    - filter: mlp\n      value: [1, 0.5, 0.7, 0.3, 0]\n    - value: 0.5\ndtype: float16\n",
        "linear": f"models:\n  - model: {m1}\n    parameters: {{weight: 1.0}}\n  - model: {m2}\n"
                  f"    parameters: {{weight: 0.3}}\n  - model: {m3}\n    parameters: {{weight: 0.5}}\n"
                  "merge_method: linear\ndtype: float16\n",
        "orcamini-platy-44layer": f"slices:\n  - sources:\n    - model: {m1}\n      layer_range: [0, 3]\n"
                                  f"  - sources:\n    - model: {m2}\n      layer_range: [1, 4]\n"
                                  "merge_method: passthrough\ndtype: float16\n",
        "ties": f"models:\n  - model: {m1}\n    parameters:\n      density: [1, 0.7, 0.1]\n      weight: 1.0\n"
                f"  - model: {m2}\n    parameters:\n      density: 0.5\n      weight: [0, 0.3, 0.7, 1]\n"
                f"  - model: {m3}\n    parameters:\n      density: 0.33\n      weight:\n        - filter: mlp\n"
                f"          value: 0.5\n        - value: 0\nmerge_method: ties\nbase_model: {base}\n"
                "parameters:\n  normalize: true\n  int8_mask: true\ndtype: float16\n",
    }
    layers_want = {"orcamini-platy-44layer": 6}
    for name, text in examples.items():
        cfg = os.path.join(work, name + ".yml")
        open(cfg, "w").write(text)
        out = os.path.join(work, "out-" + name)
        run(a.deltakit, "merge", cfg, "--out", out)
        got, order = read_st(out)
        n_layers = len({n.split("layers.")[1].split(".")[0] for n in order if "layers." in n})
        want = layers_want.get(name, 4)
        dtypes = {d for d, _ in got.values()}
        cfg_json = json.load(open(os.path.join(out, "config.json")))
        if n_layers != want or cfg_json["num_hidden_layers"] != want:
            sys.exit(f"FAIL: example {name}: {n_layers} layers (config {cfg_json['num_hidden_layers']}), not {want}")
        print(f"ok: example {name}: {len(order)} tensors, {n_layers} layers, {sorted(dtypes)}")


def case_adapters(a, work):
    base, fts = fixture(a, work, n_models=2, dtype="bf16")
    # a second bf16 fine-tune: the first one's fixture with another seed would change the base
    ft1 = os.path.join(work, "ft1")
    B, names = read_st(base)
    rng = np.random.default_rng(3)
    t = {}
    for n in names:
        v = B[n][1] + rng.normal(0, 0.02 * (np.abs(B[n][1]).mean() + 1e-3), B[n][1].shape)
        t[n] = v
    write_st(ft1, t, base, "BF16")
    fts.append(ft1)
    for recipe in ("raw", "bitdelta"):
        ads, applied = [], []
        for i, f in enumerate(fts):
            ad = os.path.join(work, f"a{i}-{recipe}.h5")
            run(a.deltakit, "compress", "--base", base, "--finetuned", f, "--out", ad, "--recipe", recipe)
            ap = os.path.join(work, f"ap{i}-{recipe}")
            run(a.deltakit, "apply", "--base", base, "--adapter", ad, "--out", ap)
            ads.append(ad), applied.append(ap)
        for method in ("ties", "dare_ties"):
            p = ["{weight: 0.7, density: 0.5}", "{weight: 0.5, density: 0.5}"]
            outs = []
            for tag, inputs in (("adapters", ads), ("checkpoints", applied)):
                cfg = yaml(os.path.join(work, f"{method}-{tag}.yml"), method, base, list(zip(inputs, p)), "", "seed: 11")
                out = os.path.join(work, f"m-{recipe}-{method}-{tag}")
                run(a.deltakit, "merge", cfg, "--out", out)
                outs.append(open(os.path.join(out, "model.safetensors"), "rb").read())
            if outs[0] != outs[1]:
                sys.exit(f"FAIL: {method} of {recipe} adapters differs from {method} of the checkpoints they apply to")
            print(f"{recipe} adapters, {method}: identical to merging the applied checkpoints ({len(outs[0])} bytes)")
    print("ok: merging adapters == merging their checkpoints")


def case_streamed(a, work):
    """Merges of checkpoints whose methods stream (linear, task arithmetic with no, magnitude or
    random sparsification: statistics passes, then the blocks) run each tensor in 64K-entry
    blocks; merging raw adapters of the same fine-tunes takes the whole-tensor path. A small bf16
    model (tensors of up to 4 blocks): the same bytes."""
    base, ft0 = os.path.join(work, "base"), os.path.join(work, "ft0")
    run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft0, "--size", "small", "--seed", "4")
    ft1, junk = os.path.join(work, "ft1"), os.path.join(work, "junk")
    # another fine-tune of the same shapes (its own base, from another seed, is not used)
    run(a.deltakit, "make-fixture", "--out-base", junk, "--out-finetuned", ft1, "--size", "small", "--seed", "5")
    ads = []
    for i, f in enumerate((ft0, ft1)):
        ads.append(os.path.join(work, f"raw{i}.h5"))
        run(a.deltakit, "compress", "--base", base, "--finetuned", f, "--out", ads[-1], "--recipe", "raw")
    cases = [("task_arithmetic", ["{weight: 0.7}", "{weight: -0.4}"], "{lambda: 0.6, normalize: true}", ""),
             ("task_arithmetic", ["{weight: 1.0}", "{weight: 0.5}"], "", "dtype: float32"),
             ("linear", ["{weight: 0.3}", "{weight: 0.9}"], "", ""),
             ("ties", ["{weight: 0.7, density: 0.5}", "{weight: 0.5, density: 0.2}"], "", ""),
             ("dare_ties", ["{weight: 0.7, density: 0.5}", "{weight: 0.5, density: 0.3}"], "", "seed: 3"),
             ("magnitude_prune", ["{weight: 1.0, density: 0.1}", "{weight: 1.0, density: 0.4}"], "{rescale: true}",
              "rescale_norm: l2")]
    for k, (method, p, params, extra) in enumerate(cases):
        outs = []
        for tag, inputs in (("checkpoints", (ft0, ft1)), ("adapters", ads)):
            cfg = yaml(os.path.join(work, f"s{k}-{tag}.yml"), method, base, list(zip(inputs, p)), params, extra)
            out = os.path.join(work, f"s{k}-{tag}")
            run(a.deltakit, "merge", cfg, "--out", out)
            outs.append(open(os.path.join(out, "model.safetensors"), "rb").read())
        if outs[0] != outs[1]:
            sys.exit(f"FAIL: {method} {params} {extra}: the streamed merge of checkpoints differs from the merge of "
                     "their raw adapters")
        print(f"{method} {params} {extra}: streamed == whole-tensor ({len(outs[0])} bytes)")
    print("ok: streamed merges give the same bytes")


def case_layout(a, work):
    base, fts = fixture(a, work, n_models=2)
    B, names = read_st(base)
    cfg = yaml(os.path.join(work, "ta.yml"), "task_arithmetic", base, [(f, "{weight: 0.5}") for f in fts])
    out = os.path.join(work, "bf")
    run(a.deltakit, "merge", cfg, "--out", out, "--dtype", "bfloat16")
    got, order = read_st(out)
    files = sorted(os.listdir(out))
    for f in ("config.json", "merge.yml", "README.md", "model.safetensors"):
        if f not in files:
            sys.exit(f"FAIL: {f} missing from the output ({files})")
    if order != names or any(d != "BF16" for d, _ in got.values()):
        sys.exit("FAIL: --dtype bfloat16 output has other names or dtypes")
    if json.load(open(os.path.join(out, "config.json"))).get("torch_dtype") != "bfloat16":
        sys.exit("FAIL: config.json's torch_dtype was not updated")
    if open(os.path.join(out, "merge.yml")).read() != open(cfg).read():
        sys.exit("FAIL: merge.yml is not the config as given")
    # a grown vocabulary: 8 new rows of embed_tokens in one fine-tune
    emb = next(n for n in names if "embed_tokens" in n)
    F1, _ = read_st(fts[1])
    grown = {n: v for n, (_, v) in F1.items()}
    grown[emb] = np.concatenate([grown[emb], np.ones((8, grown[emb].shape[1]))])
    g = os.path.join(work, "grown")
    write_st(g, grown, fts[1])
    cfg = yaml(os.path.join(work, "g.yml"), "task_arithmetic", base, [(fts[0], "{weight: 0.5}"), (g, "{weight: 0.5}")])
    p = run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "g-out"))
    if "new tokens' rows are dropped" not in p.stderr:
        sys.exit("FAIL: no warning about the grown vocabulary:\n" + p.stderr)
    same, _ = read_st(os.path.join(work, "g-out"))
    plain = os.path.join(work, "plain")
    run(a.deltakit, "merge", yaml(os.path.join(work, "p.yml"), "task_arithmetic", base,
                                  [(fts[0], "{weight: 0.5}"), (fts[1], "{weight: 0.5}")]), "--out", plain)
    ref, _ = read_st(plain)
    if any(not np.array_equal(same[n][1], ref[n][1]) for n in names):
        sys.exit("FAIL: the grown vocabulary's shared rows did not merge like the plain fine-tune")
    # any other shape change: refused, naming the file, nothing written
    bad = dict(grown)
    bad[emb] = grown[emb][:-8]
    mlp = next(n for n in names if "mlp" in n)
    bad[mlp] = bad[mlp][:, :-1]
    b = os.path.join(work, "badshape")
    write_st(b, bad, fts[1])
    cfg = yaml(os.path.join(work, "b.yml"), "ties", base, [(fts[0], "{weight: 0.5}"), (b, "{weight: 0.5}")])
    p = run(a.deltakit, "merge", cfg, "--out", os.path.join(work, "b-out"), ok=False)
    if p.returncode == 0 or b not in p.stderr or mlp not in p.stderr or os.path.exists(os.path.join(work, "b-out")):
        sys.exit(f"FAIL: a changed shape was not refused cleanly: rc {p.returncode}\n{p.stderr}")
    print("refused:", p.stderr.strip().splitlines()[-1])
    print("ok: layout, dtype, side files, grown vocabulary policy")


def case_mpi(a, work):
    base, fts = fixture(a, work)
    cfg = yaml(os.path.join(work, "d.yml"), "dare_ties", base,
               [(f, "{weight: 0.5, density: 0.4}") for f in fts], "", "seed: 3")
    outs = {}
    for n in (1, 2, 3):
        out = os.path.join(work, f"np{n}")
        run(a.mpirun, "--oversubscribe", "-n", str(n), a.deltakit, "merge", cfg, "--out", out, "--max-shard-size", "40KB")
        outs[n] = {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))}
    for t in ("1", "2", "3"):  # threads > 1: workers each taking a shard
        out = os.path.join(work, f"t{t}")
        run(a.deltakit, "merge", cfg, "--out", out, "--max-shard-size", "40KB", "--threads", t)
        outs[f"{t} threads"] = {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))}
    shards = [f for f in outs[1] if f.endswith(".safetensors")]
    if len(shards) < 3:
        sys.exit(f"FAIL: expected a sharded output, got {shards}")
    for k, v in outs.items():
        if v != outs[1]:
            sys.exit(f"FAIL: merge with {k} differs from 1 rank")
    # a whole-tensor method (OpenMP inside a tensor) and an adapter input, over 1-3 workers
    adapter = os.path.join(work, "ft0.h5")
    run(a.deltakit, "compress", "--base", base, "--finetuned", fts[0], "--recipe", "dare:p=0.5", "--out", adapter)
    della = yaml(os.path.join(work, "della.yml"), "della", base,
                 [(adapter, "{weight: 0.5, density: 0.5}")] + [(f, "{weight: 0.5, density: 0.5}") for f in fts[1:]])
    whole = []
    for t in ("1", "2", "3"):
        out = os.path.join(work, f"della{t}")
        run(a.deltakit, "merge", della, "--out", out, "--max-shard-size", "40KB", "--threads", t)
        whole.append({f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))})
    if not whole[0] == whole[1] == whole[2]:
        sys.exit("FAIL: della with an adapter input differs between 1, 2 and 3 threads")
    print(f"ok: {len(shards)} shards byte-identical for mpirun -n 1, 2, 3 and 1, 2, 3 threads; della with an "
          "adapter input the same for 1, 2, 3 threads")


def same_output(x, y):
    return read_st(x)[0].keys() == read_st(y)[0].keys() and all(
        np.array_equal(read_st(x)[0][k][1], read_st(y)[0][k][1]) for k in read_st(x)[0])


def case_mergekit(a, work):
    """mergekit's semantics where deltakit used to differ: della's epsilon defaults to 0.15; a
    filter "*" matches every tensor; --out in folders that do not exist yet is created."""
    base, fts = fixture(a, work, n_models=2)
    outs = {}
    for label, eps in (("default", ""), ("0.15", ", epsilon: 0.15"), ("0", ", epsilon: 0")):
        cfg = yaml(os.path.join(work, f"della-{label}.yml"), "della", base,
                   [(f, "{weight: 0.5, density: 0.5" + eps + "}") for f in fts])
        outs[label] = os.path.join(work, f"della-{label}")
        run(a.deltakit, "merge", cfg, "--out", outs[label], "--threads", "1")
    if not same_output(outs["default"], outs["0.15"]):
        sys.exit("FAIL: della without epsilon is not della with epsilon 0.15 (mergekit's default)")
    if same_output(outs["default"], outs["0"]):
        sys.exit("FAIL: della's epsilon makes no difference; the test needs another fixture")
    plain = yaml(os.path.join(work, "plain.yml"), "task_arithmetic", base, [(f, "{weight: 0.5}") for f in fts])
    star = yaml(os.path.join(work, "star.yml"), "task_arithmetic", base,
                [(f, "{weight: [{filter: '*', value: 0.5}]}") for f in fts])
    nested = os.path.join(work, "not", "yet", "there")
    run(a.deltakit, "merge", plain, "--out", os.path.join(work, "plain"))
    run(a.deltakit, "merge", star, "--out", nested)
    if not same_output(os.path.join(work, "plain"), nested):
        sys.exit("FAIL: a weight rule with filter '*' is not the plain weight")
    print("ok: della's epsilon defaults to 0.15; filter '*' matches all; --out's missing folders are made")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--mpirun", default="mpirun")
    ap.add_argument("--case", required=True,
                    choices=["reference", "adapters", "layout", "mpi", "mergekit", "methods", "slices", "examples",
                             "streamed"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        globals()["case_" + a.case](a, work)


if __name__ == "__main__":
    main()
