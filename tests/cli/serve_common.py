"""A `deltakit serve` process for the tests: started on a free port, stopped by SIGTERM (which
must drain and exit 0), and a plain http.client for its API."""
import http.client
import json
import signal
import subprocess
import sys


class Server:
    def __init__(self, deltakit, base, *extra):
        self.argv = [deltakit, "serve", "--base", base, "--port", "0", *extra]
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if "listening on http://" not in line:
            self.p.kill()
            sys.exit(f"FAIL: {' '.join(self.argv)} did not start: {line}{self.p.stderr.read()}")
        self.port = int(line.split("http://")[1].split()[0].rsplit(":", 1)[1])

    def request(self, method, path, body=None, timeout=120):
        """(status, parsed JSON or text). `body`: an object (sent as JSON) or raw bytes."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw)
        except ValueError:
            return r.status, raw.decode("utf-8", "replace")

    def complete(self, **req):
        status, body = self.request("POST", "/v1/completions", req)
        if status != 200:
            sys.exit(f"FAIL: completion {req} -> {status} {body}")
        return body

    def stream(self, **req):
        """The server-sent events of a streaming completion, as parsed chunks (then "[DONE]")."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        c.request("POST", "/v1/completions", body=json.dumps(dict(req, stream=True)).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200 or not r.getheader("Content-Type", "").startswith("text/event-stream"):
            sys.exit(f"FAIL: streaming completion -> {r.status} {r.getheader('Content-Type')}")
        events = []
        for block in r.read().decode().split("\n\n"):
            if not block.strip():
                continue
            assert block.startswith("data: "), block
            payload = block[len("data: "):]
            events.append(payload if payload == "[DONE]" else json.loads(payload))
        c.close()
        return events

    def timed_stream(self, **req):
        """(token ids, seconds to the first token, seconds between later tokens) of a stream."""
        import time
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        t0 = time.monotonic()
        c.request("POST", "/v1/completions", body=json.dumps(dict(req, stream=True)).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200, r.status
        ids, stamps = [], []
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            got = json.loads(line[6:])["choices"][0]["token_ids"]
            if got:
                ids += got
                stamps.append(time.monotonic())
        c.close()
        gaps = [b - a for a, b in zip(stamps, stamps[1:])]
        return ids, (stamps[0] - t0) if stamps else None, gaps

    def metrics(self):
        status, text = self.request("GET", "/metrics")
        assert status == 200, (status, text)
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            sys.exit(f"FAIL: {' '.join(self.argv)} did not exit within 60 s of SIGTERM")
        err = self.p.stderr.read()
        if rc != 0:
            sys.exit(f"FAIL: the server exited {rc} after SIGTERM\n{err}")
        return err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.p.poll() is None:
            if exc[0] is None:
                self.stop()
            else:
                self.p.kill()
