"""What the phivk serve tests share: a fixture model, servers started on free ports
(--port 0, the port read from the server's start line), HTTP requests and server-
sent events read with the standard library, and the pass/fail counting of
tests/apps/expect.sh (lines "ok   NAME" / "FAIL NAME", a summary, the exit status).
"""
import atexit
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# The Khronos validation layer reports what it finds; any report is a failure.
VALIDATION = re.compile(r"Validation (Error|Warning)|VUID-|phivk: validation")


class Suite:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.dir = tempfile.mkdtemp()
        self.servers = []
        # a test that raises leaves no server behind
        atexit.register(self.cleanup)

    def cleanup(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL " + name + (": " + str(detail)[:600] if detail else ""), flush=True)
        return cond

    def fixture(self, make_fixture, name="tiny.gguf"):
        path = os.path.join(self.dir, name)
        subprocess.run([make_fixture, path, "phi3"], check=True)
        return path

    def server(self, phivk, model, *args, env=None):
        s = Server(phivk, model, os.path.join(self.dir, "server%d.log" % len(self.servers)), args, env)
        self.servers.append(s)
        return s

    def finish(self):
        for s in self.servers:
            s.stop()
            if s.validation_messages():
                self.check("server_log_has_no_validation_messages", False, s.validation_messages())
        self.cleanup()
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


class Server:
    """A phivk serve process on 127.0.0.1 and a free port."""

    def __init__(self, phivk, model, log, args, env):
        self.log = log
        e = dict(os.environ)
        e.setdefault("PHIVK_VALIDATE", "1")
        # the kernel choice measured at load takes seconds on a busy CPU; the tests
        # need a server, not the fastest one
        e.setdefault("PHIVK_TUNE", "0")
        e.update(env or {})
        self.proc = subprocess.Popen([phivk, "serve", model, "--port", "0", *args],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=e)
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline and self.proc.poll() is None:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", self.text())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.1)
        if self.port is None:
            raise RuntimeError("the server did not start:\n" + self.text())

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def validation_messages(self):
        return [l for l in self.text().splitlines() if VALIDATION.search(l)]

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def request(port, method, path, body=None, headers=None, timeout=120):
    """(status, headers dict, parsed JSON or text) of one request."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    raw = r.read().decode("utf-8", errors="replace")
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    try:
        return r.status, hdrs, json.loads(raw)
    except ValueError:
        return r.status, hdrs, raw


def post(port, path, body, headers=None, timeout=120):
    return request(port, "POST", path, body, headers, timeout)


def stream(port, path, body, timeout=120):
    """Streams a request: (status, events as parsed JSON or "[DONE]", seconds to the
    first content, whether the stream was well-formed). Well-formed: every line is
    "data: ..." followed by a blank line (or an SSE comment), the last event is
    [DONE], nothing after it."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.time()
    c.request("POST", path, body=json.dumps(dict(body, stream=True)), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    events, ttft, ok, pending = [], None, True, b""
    if r.status != 200:
        c.close()
        return r.status, events, None, False
    while True:
        line = r.readline()
        if not line:
            break
        if line in (b"\n", b"\r\n") or line.startswith(b":"):  # a blank line, an SSE comment (keep-alive)
            continue
        if not line.startswith(b"data: "):
            ok = False
            continue
        payload = line[6:].strip()
        if events and events[-1] == "[DONE]":
            ok = False
        if payload == b"[DONE]":
            events.append("[DONE]")
            continue
        try:
            ev = json.loads(payload)
        except ValueError:
            ok = False
            continue
        if ttft is None and event_text(ev):
            ttft = time.time() - t0
        events.append(ev)
    c.close()
    ok = ok and bool(events) and events[-1] == "[DONE]"
    return r.status, events, ttft, ok


def event_text(ev):
    """The text one stream chunk (chat or completion) carries."""
    if not isinstance(ev, dict) or not ev.get("choices"):
        return ""
    ch = ev["choices"][0]
    if "delta" in ch:
        return ch["delta"].get("content") or ""
    return ch.get("text") or ""


def streamed_text(events):
    return "".join(event_text(e) for e in events)


def finish_reason(events):
    for e in events:
        if isinstance(e, dict) and e.get("choices") and e["choices"][0].get("finish_reason"):
            return e["choices"][0]["finish_reason"]
    return None


def answer_text(body):
    """The text of a non-streamed chat or completion response."""
    ch = body["choices"][0]
    return ch["message"]["content"] if "message" in ch else ch["text"]


def chat(content, **kw):
    return dict({"model": "tiny", "messages": [{"role": "user", "content": content}], "temperature": 0}, **kw)


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]
