#!/usr/bin/env python3
"""`deltakit serve` driven over loopback by real clients (python's http.client; node's official
`openai` package in the openai case).

Cases:
  codecs   one server holds an adapter per codec; each adapter's greedy tokens equal those of the
           base-only server on the checkpoint `apply` writes for it; a request's tokens are the
           same alone or among 16 concurrent requests of other tenants (greedy and seeded
           sampling); streaming gives the same tokens as a plain request
  api      /v1/models, load/unload at run time, --max-resident (LRU), /metrics, and every bad
           input of the issue: one clear error each, the server never dies; a client that hangs
           up mid-stream frees its slot; SIGTERM drains the running request and exits 0
  openai   node's `openai` client (tests/node, installed by .ci/setup): models.list, a completion,
           a stream
  text     the real stories260K (../shared/data; skips without it): text prompts, stop strings and
           a streamed text, base and a fine-tune's adapter
  load     64 concurrent clients over 16 tenants, a fixed count of requests: no error, every
           response equal to the same request alone; p50/p99 latency printed
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cli_run import run  # noqa: E402
from serve_common import Server  # noqa: E402

SKIP = 77
RECIPES = ["raw", "dare:p=0.9", "topk:density=0.1", "bitdelta", "bitdelta:scale=row", "bitdelta:scale=group:64",
           "quant:bits=4", "quant:bits=8", "lowrank:rank=8", "bitdelta + cherry:frac=0.01",
           "dare:p=0.5 > bitdelta:scale=row"]
PROMPTS = [[1, 17, 30, 99, 4], [1, 200], [1, 5, 5, 5, 5, 5, 5, 80, 81, 82, 83]]


def tag(recipe):
    return "".join(c if c.isalnum() else "_" for c in recipe).strip("_")


def fixture(a, work, size="tiny", dtype="f32", seed="1", name=""):
    base, ft = os.path.join(work, "base" + name), os.path.join(work, "ft" + name)
    run(a.deltakit, "make-fixture", "--out-base", base, "--out-finetuned", ft, "--size", size, "--dtype", dtype,
        "--seed", seed, "--delta-rel", "0.2")
    return base, ft


def compress(a, base, ft, recipe, out):
    run(a.deltakit, "compress", "--base", base, "--finetuned", ft, "--recipe", recipe, "--out", out, "--quiet")
    return out


def expect(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)


def tokens(server, model, prompt, n=12, **kw):
    r = server.complete(model=model, prompt=prompt, max_tokens=n, temperature=kw.pop("temperature", 0), **kw)
    return r["choices"][0]["token_ids"]


def concurrently(jobs):
    """Run the callables at once; their results in order (an exception fails the test)."""
    out, errs = [None] * len(jobs), []

    def go(i):
        try:
            out[i] = jobs[i]()
        except BaseException as e:  # noqa: B036 - report anything, including sys.exit
            errs.append(repr(e))

    ts = [threading.Thread(target=go, args=(i,)) for i in range(len(jobs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    expect(not errs, f"concurrent requests failed: {errs[:3]}")
    return out


def case_codecs(a, work):
    base, ft = fixture(a, work)
    adapters = {tag(r): compress(a, base, ft, r, os.path.join(work, tag(r) + ".h5")) for r in RECIPES}
    with Server(a.deltakit, base, "--threads", "2", *[f"--adapter={n}={p}" for n, p in adapters.items()]) as s:
        got = {n: [tokens(s, n, p) for p in PROMPTS] for n in adapters}
        base_tokens = [tokens(s, os.path.basename(base), p) for p in PROMPTS]
        # batch invariance: the same requests, all at once, mixed with the other tenants'
        names = list(adapters)
        jobs = [(n, i) for i in range(len(PROMPTS)) for n in names]
        together = concurrently([lambda n=n, i=i: tokens(s, n, PROMPTS[i]) for n, i in jobs])
        for (n, i), t in zip(jobs, together):
            expect(t == got[n][i], f"{n} prompt {i}: batched tokens {t} differ from alone {got[n][i]}")
        sampled = lambda n: tokens(s, n, PROMPTS[0], 16, temperature=0.9, top_p=0.9, seed=7)
        alone = {n: sampled(n) for n in names[:6]}
        again = concurrently([lambda n=n: sampled(n) for n in names[:6] * 3])
        for n, t in zip(names[:6] * 3, again):
            expect(t == alone[n], f"{n}: seeded sampling gave {t} batched, {alone[n]} alone")
        # streaming: the same tokens, then a finish reason, then [DONE]
        ev = s.stream(model=names[3], prompt=PROMPTS[0], max_tokens=12, temperature=0)
        expect(ev[-1] == "[DONE]" and ev[-2]["choices"][0]["finish_reason"] == "length",
               f"stream does not end with a finish reason and [DONE]: {ev[-3:]}")
        streamed = [t for e in ev[:-1] for t in e["choices"][0]["token_ids"]]
        expect(streamed == got[names[3]][0], f"streamed tokens {streamed} != {got[names[3]][0]}")
        models = s.request("GET", "/v1/models")[1]["data"]
    differs = sum(got[n] != base_tokens for n in adapters)
    expect(differs >= len(adapters) - 2, f"only {differs} adapters change the base's tokens: the test proves little")
    # each adapter against the base-only server on its applied checkpoint
    for n, path in adapters.items():
        applied = os.path.join(work, n + "_applied")
        run(a.deltakit, "apply", "--base", base, "--adapter", path, "--out", applied)
        with Server(a.deltakit, applied, "--threads", "1") as ref:
            want = [tokens(ref, n + "_applied", p) for p in PROMPTS]
        expect(want == got[n], f"{n}: served tokens {got[n]} differ from the applied checkpoint's {want}")
        card = next(m for m in models if m["id"] == n)
        print(f"{n:32s} resident {card['resident_bytes']:>8d} B  tokens == applied checkpoint's")
    print(f"ok: {len(adapters)} codecs served from their compressed form, equal to apply; batch-invariant")


def case_api(a, work):
    base, ft = fixture(a, work, size="small")
    bd = compress(a, base, ft, "bitdelta", os.path.join(work, "bd.h5"))
    q4 = compress(a, base, ft, "quant:bits=4", os.path.join(work, "q4.h5"))
    lr = compress(a, base, ft, "lowrank:rank=4", os.path.join(work, "lr.h5"))
    other_base, other_ft = fixture(a, work, seed="2", name="_other", size="small")
    wrong = compress(a, other_base, other_ft, "bitdelta", os.path.join(work, "wrong.h5"))
    damaged = os.path.join(work, "damaged.h5")
    data = open(bd, "rb").read()
    open(damaged, "wb").write(data[: len(data) // 2])
    name = os.path.basename(base)
    with Server(a.deltakit, base, "--adapter", "bd=" + bd, "--adapter", "q4=" + q4, "--max-resident", "1",
                "--threads", "2") as s:
        expect(s.request("GET", "/health")[0] == 200, "/health")
        # a second server on the same port is refused, not given half the connections
        p = subprocess.run([a.deltakit, "serve", "--base", base, "--port", str(s.port)], capture_output=True, text=True,
                           timeout=60)
        expect(p.returncode == 1 and "cannot listen there" in p.stderr, f"a second server on the port: {p.returncode} {p.stderr}")
        ids = {m["id"]: m for m in s.request("GET", "/v1/models")[1]["data"]}
        expect(set(ids) == {name, "bd", "q4"} and ids["bd"]["parent"] == name and ids[name]["parent"] is None,
               f"/v1/models: {ids}")
        expect([m["resident"] for k, m in sorted(ids.items()) if k != name].count(True) == 1,
               f"--max-resident 1 keeps one adapter in memory: {ids}")
        # LRU: alternating tenants load on use and still answer as when resident
        first = {n: tokens(s, n, PROMPTS[0]) for n in ("bd", "q4")}
        for n in ("q4", "bd", "q4"):
            expect(tokens(s, n, PROMPTS[0]) == first[n], f"{n} answers differently after reloading")
        # load and unload at run time
        st, body = s.request("POST", "/v1/load_lora_adapter", {"lora_name": "lr", "lora_path": lr})
        expect(st == 200 and "lr" in body, f"load_lora_adapter -> {st} {body}")
        expect(any(m["id"] == "lr" for m in s.request("GET", "/v1/models")[1]["data"]), "lr not listed after load")
        tokens(s, "lr", PROMPTS[1])
        st, body = s.request("POST", "/v1/load_lora_adapter", {"lora_name": "lr", "lora_path": lr})
        expect(st == 400 and "already" in body["error"]["message"], f"loading a name twice -> {st} {body}")
        st, body = s.request("POST", "/v1/unload_lora_adapter", {"lora_name": "lr"})
        expect(st == 200, f"unload -> {st} {body}")
        st, body = s.request("POST", "/v1/completions", {"model": "lr", "prompt": [1, 2]})
        expect(st == 404 and body["error"]["code"] == 404, f"an unloaded adapter -> {st} {body}")
        st, body = s.request("POST", "/v1/unload_lora_adapter", {"lora_name": "lr"})
        expect(st == 404, f"unloading twice -> {st}")

        # bad input: status, OpenAI's error shape, a message that names the problem
        def bad(path, body, status, words):
            st, b = s.request("POST", path, body)
            expect(st == status and isinstance(b, dict) and set(b["error"]) == {"message", "type", "code"},
                   f"{path} {str(body)[:80]!r}: {st} {str(b)[:200]}")
            msg = b["error"]["message"]
            expect(all(w in msg for w in words), f"{path}: message {msg!r} lacks {words}")
            print(f"  {st} {msg[:110]}")
        ctx = ids[name]["max_model_len"]
        bad("/v1/completions", b'{"model": "bd", "prompt": [1, 2]', 400, ["JSON"])
        bad("/v1/completions", b'[' * 100000 + b']' * 100000, 400, ["deep"])
        bad("/v1/completions", {"model": "nope", "prompt": [1]}, 404, ["nope", "does not exist"])
        bad("/v1/completions", {"model": "bd", "prompt": [1] * ctx}, 400, ["maximum context length", str(ctx)])
        bad("/v1/completions", {"model": "bd", "prompt": [1], "max_tokens": 0}, 400, ["max_tokens"])
        bad("/v1/completions", {"model": "bd", "prompt": [1], "max_tokens": -5}, 400, ["max_tokens"])
        bad("/v1/completions", {"model": "bd", "prompt": [1], "max_tokens": 10**12}, 400, ["maximum context length"])
        bad("/v1/completions", {"model": "bd", "prompt": [1], "max_tokens": "7"}, 400, ["max_tokens"])
        bad("/v1/completions", {"model": "bd", "prompt": [1, 10**9]}, 400, ["token ids"])
        bad("/v1/completions", {"model": "bd", "prompt": [1], "temperature": -1}, 400, ["temperature"])
        bad("/v1/completions", {"model": "bd"}, 400, ["prompt"])
        bad("/v1/completions", b'{"model": "bd", "prompt": "\xff\xfe"}', 400, ["UTF-8"])
        bad("/v1/completions", {"model": "bd", "prompt": "hello"}, 400, ["tokenizer"])
        bad("/v1/completions", {"model": "bd", "prompt": list(range(1, 200)) * 1300}, 400, ["maximum context length"])
        bad("/v1/chat/completions", {"model": "bd", "messages": [{"role": "user", "content": "hi"}]}, 400,
            ["chat template"])
        bad("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": os.path.join(work, "missing.h5")}, 400,
            ["missing.h5"])
        bad("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": damaged}, 400, ["damaged.h5"])
        bad("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": wrong}, 400,
            ["differs from the one the adapter was made from"])
        bad("/v1/load_lora_adapter", {"lora_name": "x"}, 400, ["lora_path"])
        st, _ = s.request("POST", "/v1/completions", b"{" + b" " * (5 << 20) + b"}")
        expect(st == 413, f"a 5 MB body -> {st}")
        st, b = s.request("GET", "/v1/nothing")
        expect(st == 404 and "error" in b, f"unknown route -> {st} {b}")
        # a client that hangs up mid-stream: its slot is freed
        before = s.metrics()["deltakit_requests_cancelled_total"]
        sock = socket.create_connection(("127.0.0.1", s.port))
        body = json.dumps({"model": "bd", "prompt": [1, 2, 3], "max_tokens": ctx - 3, "temperature": 0, "stream": True})
        sock.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n{body}".encode())
        got = b""
        sock.settimeout(30)
        while b"data:" not in got:
            chunk = sock.recv(4096)
            expect(chunk, f"the stream closed before its first chunk: {got!r}")
            got += chunk
        sock.close()
        for _ in range(200):
            m = s.metrics()
            if m["deltakit_requests_running"] == 0:
                break
            time.sleep(0.05)
        expect(m["deltakit_requests_running"] == 0, f"the hung-up stream still runs: {m}")
        print(f"  hang-up: cancelled {m['deltakit_requests_cancelled_total'] - before:.0f}, running 0")
        expect(tokens(s, "bd", PROMPTS[0]) == first["bd"], "the server answers differently after the bad inputs")
        # SIGTERM drains: a request running when the signal comes still gets its whole answer
        result = {}

        def drained_request():
            try:
                result["r"] = s.complete(model="q4", prompt=[1, 2, 3], max_tokens=ctx - 3, temperature=0)
            except Exception as e:  # reported below, with the test's own words
                result["error"] = repr(e)

        t = threading.Thread(target=drained_request)
        t.start()
        # Wait for the request to be running before the signal (an ASan build under a busy ctest
        # takes seconds to admit it); the drain is only tested once it is in flight.
        deadline = time.monotonic() + 60
        while s.metrics()["deltakit_requests_running"] < 1 and "error" not in result:
            expect(time.monotonic() < deadline, "the request never started running")
            time.sleep(0.01)
        s.stop()
        t.join()
        expect("r" in result, f"the request running at SIGTERM failed: {result.get('error')}")
        ch = result["r"]["choices"][0]
        expect(ch["finish_reason"] == "length" and len(ch["token_ids"]) == ctx - 3,
               f"the request running at SIGTERM was cut: {ch['finish_reason']}, {len(ch['token_ids'])} tokens")
    print("ok: API, adapters at run time, LRU, bad inputs, hang-up and SIGTERM drain")


def case_openai(a, work):
    client = os.path.join(a.repo, "tests", "node")
    if not os.path.isdir(os.path.join(client, "node_modules", "openai")) or not shutil.which("node"):
        if os.environ.get("CI"):
            sys.exit("FAIL: the openai npm package is not installed in tests/node (bash .ci/setup installs it)")
        print("SKIP: tests/node/node_modules/openai is absent (npm install --prefix tests/node)")
        sys.exit(SKIP)
    base, ft = fixture(a, work)
    bd = compress(a, base, ft, "bitdelta", os.path.join(work, "bd.h5"))
    with Server(a.deltakit, base, "--adapter", "bd=" + bd) as s:
        want = tokens(s, "bd", PROMPTS[0], 10)
        p = subprocess.run(["node", os.path.join(client, "openai_client.mjs"), f"http://127.0.0.1:{s.port}/v1", "bd",
                            json.dumps(PROMPTS[0])], capture_output=True, text=True, timeout=120)
        expect(p.returncode == 0, f"the openai client failed:\n{p.stdout}\n{p.stderr}")
        out = json.loads(p.stdout.strip().splitlines()[-1])
    expect(sorted(out["models"]) == sorted([os.path.basename(base), "bd"]), f"models.list: {out['models']}")
    expect(out["tokens"] == want and out["streamed"] == want, f"openai client tokens {out} != {want}")
    expect(out["finish_reason"] == "length" and out["usage"]["completion_tokens"] == 10, f"{out}")
    print("ok: the official openai client lists models, completes and streams")


def case_text(a, work):
    need = [os.path.join(a.data, f) for f in ("stories260K.bin", "tok512.bin", "tinyshakespeare.txt")]
    if not all(os.path.exists(f) for f in need):
        print("SKIP: ../shared/data/stories260K.bin is absent")
        sys.exit(SKIP)
    model, ft = os.path.join(work, "s260"), os.path.join(work, "s260-play")
    run(a.deltakit, "import-llama2c", need[0], "--tokenizer", need[1], "--out", model)
    run(a.deltakit, "finetune", "--model", model, "--task", "text:" + need[2], "--out", ft, "--steps", "60",
        "--batch", "8", "--seq", "128", "--lr", "2e-3", "--warmup", "5", "--quiet")
    ad = compress(a, model, ft, "bitdelta + cherry:frac=0.01", os.path.join(work, "play.h5"))
    with Server(a.deltakit, model, "--adapter", "play=" + ad) as s:
        r = s.complete(model="s260", prompt="Once upon a time", max_tokens=12, temperature=0)
        text = r["choices"][0]["text"]
        expect(text.startswith(", there was a little girl named Lily"), f"base completion {text!r}")
        r = s.complete(model="s260", prompt="Once upon a time", max_tokens=40, temperature=0, stop=["Lily"])
        expect(r["choices"][0]["text"] == ", there was a little girl named " and r["choices"][0]["finish_reason"] == "stop",
               f"stop string: {r['choices'][0]}")
        ev = s.stream(model="s260", prompt="Once upon a time", max_tokens=40, temperature=0, stop=["Lily"])
        streamed = "".join(e["choices"][0]["text"] for e in ev[:-1])
        expect(streamed == ", there was a little girl named ", f"streamed text {streamed!r}")
        play = s.complete(model="play", prompt="ROMEO:", max_tokens=30, temperature=0)["choices"][0]["text"]
        print(f"  base: {text!r}\n  play: {play!r}")
        expect(play != s.complete(model="s260", prompt="ROMEO:", max_tokens=30, temperature=0)["choices"][0]["text"],
               "the Shakespeare adapter writes what the base writes")
    applied = os.path.join(work, "play-applied")
    run(a.deltakit, "apply", "--base", model, "--adapter", ad, "--out", applied)
    with Server(a.deltakit, applied) as ref:
        want = ref.complete(model="play-applied", prompt="ROMEO:", max_tokens=30, temperature=0)["choices"][0]["text"]
    expect(play == want, f"served adapter {play!r} != applied checkpoint {want!r}")
    print("ok: text prompts, stop strings and streaming on stories260K; the adapter equals its applied checkpoint")


def case_load(a, work):
    base, ft = fixture(a, work, size="small")
    recipes = ["bitdelta", "bitdelta:scale=row", "quant:bits=4", "dare:p=0.9"]
    args = []
    for i in range(16):
        ftd = os.path.join(work, f"ft{i}")
        if i:  # 16 different fine-tunes of one base
            run(a.deltakit, "make-fixture", "--out-base", os.path.join(work, "b_unused"), "--out-finetuned", ftd,
                "--size", "small", "--dtype", "f32", "--seed", "1", "--delta-rel", f"{0.1 + 0.02 * i}", "--overwrite")
        else:
            ftd = ft
        args.append(f"--adapter=t{i}=" + compress(a, base, ftd, recipes[i % 4], os.path.join(work, f"t{i}.h5")))
    reqs = [(f"t{i % 16}", PROMPTS[i % 3], 8 + i % 5) for i in range(64)]
    with Server(a.deltakit, base, "--max-batch", "64", *args) as s:
        alone = {}
        for m, p, n in reqs:
            alone.setdefault((m, tuple(p), n), tokens(s, m, p, n))
        lat, ttft, gaps = [], [], []

        def one(m, p, n):
            t0 = time.monotonic()
            ids, first, between = s.timed_stream(model=m, prompt=p, max_tokens=n, temperature=0)
            lat.append(time.monotonic() - t0)
            ttft.append(first)
            gaps.extend(between)
            return ids

        t0 = time.monotonic()
        rounds = 4
        for _ in range(rounds):
            got = concurrently([lambda m=m, p=p, n=n: one(m, p, n) for m, p, n in reqs])
            for (m, p, n), t in zip(reqs, got):
                expect(t == alone[(m, tuple(p), n)], f"{m}: {t} under load, {alone[(m, tuple(p), n)]} alone")
        wall = time.monotonic() - t0
        mtr = s.metrics()
    pct = lambda v, q: 1000 * sorted(v)[int(q * (len(v) - 1))]
    print(f"load: {rounds} x 64 concurrent streamed requests over 16 tenants in {wall:.2f} s, "
          f"mean batch {mtr['deltakit_batch_sequences_mean']:.1f} sequences over the server's life\n"
          f"  request latency p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms\n"
          f"  time to first token p50 {pct(ttft, 0.5):.1f} ms, p99 {pct(ttft, 0.99):.1f} ms\n"
          f"  between tokens p50 {pct(gaps, 0.5):.1f} ms, p99 {pct(gaps, 0.99):.1f} ms")
    expect(wall < 60, "the load test ran over 60 s")
    print("ok: no error, every response equal to the same request alone")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltakit", required=True)
    ap.add_argument("--repo", default=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    ap.add_argument("--data", default="")
    ap.add_argument("--case", required=True, choices=["codecs", "api", "openai", "text", "load"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        globals()["case_" + a.case](a, work)


if __name__ == "__main__":
    main()
