#!/usr/bin/python3
"""Soak: mixed load on the release build for SOAK_SECONDS (default 600; CI
uses 60), then checks

- zero unexpected errors (every answer has the status its request calls
  for; wrk, when installed, reports no non-2xx answer and no socket error);
- RSS growth < 2% between the end of the warm-up and the end;
- open fds stable (same count at both points, every client connection
  closed);
and prints the figures.

Load: wrk (tests/robustness/install-deps installs it) on a small JSON
inference; Python clients sending binary tensors (up2d), larger models
(gen3d, a 16-channel Conv2DTranspose with .npy weights), bad requests that
must be refused (malformed JSON, unknown model, 405, 413, NaN, shape
mismatch, uploads cut mid-way) and health/metrics polls, on kept-alive and
fresh connections.

The warm-up is 10% of the run, at least 30 s (half of runs under a minute),
at most 60 s. Both measuring points are
quiescent: load paused, no request in flight, client connections closed,
so in-flight buffers do not blur the comparison.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import numpy as np
import requests

import rlib as L

T = L.T
check = L.check

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
# Half of a short run: glibc's arenas need ~30 s of this mixed load to reach
# their working size, and growth before that is not a leak (ASan shows none).
WARMUP = min(60.0, max(0.1 * SECONDS, min(30.0, 0.5 * SECONDS)))
MAX_BODY = 4 << 20
UP1D_K = np.load(os.path.join(T.SHIPPED_MODELS, "up1d.kernel.npy"))
UP1D_B = np.load(os.path.join(T.SHIPPED_MODELS, "up1d.bias.npy"))
UP2D_K = np.load(os.path.join(T.SHIPPED_MODELS, "up2d.kernel.npy"))
UP2D_B = np.load(os.path.join(T.SHIPPED_MODELS, "up2d.bias.npy"))


class Load:
    """Python client threads that can be paused (for quiescent measuring points)."""

    def __init__(self, d):
        self.d = d
        self.stop = threading.Event()
        self.run = threading.Event()
        self.lock = threading.Lock()
        self.count = {}
        self.unexpected = []
        self.busy = 0                   # threads inside a request
        self.threads = []

    def note(self, kind, ok, detail=""):
        with self.lock:
            self.count[kind] = self.count.get(kind, 0) + 1
            if not ok:
                self.unexpected.append((kind, detail))

    def loop(self, fn):
        def body():
            sess = requests.Session()
            rng = np.random.default_rng(len(self.threads) * 7919)
            while not self.stop.is_set():
                if not self.run.is_set():
                    sess.close()                       # no connection left open
                    sess = requests.Session()
                    self.run.wait(0.2)
                    continue
                with self.lock:
                    self.busy += 1
                try:
                    fn(sess, rng)
                except Exception as e:     # noqa: BLE001
                    self.note(fn.__name__, False, repr(e))
                finally:
                    with self.lock:
                        self.busy -= 1
            sess.close()
        t = T.Bg(body)
        self.threads.append(t)
        t.start()

    def pause(self):
        self.run.clear()
        T.wait_until(lambda: self.busy == 0, 60, 0.05)

    def finish(self):
        self.stop.set()
        self.run.set()
        for t in self.threads:
            t.join(60)


def make_clients(load, d, mid_k, mid_b):
    x2 = [np.random.default_rng(i).standard_normal((1, 6 + i, 5 + i, 3)).astype(np.float32)
          for i in range(3)]
    want2 = [T.keras_ref(x, UP2D_K, UP2D_B, [2, 2], "same", activation="relu") for x in x2]
    xm = [np.random.default_rng(10 + i).standard_normal((1, 16, 16, 16)).astype(np.float32)
          for i in range(2)]
    wantm = [T.keras_ref(x, mid_k, mid_b, [2, 2], "same") for x in xm]
    xg = np.full((1, 10, 10, 10, 8), 0.1, dtype=np.float32)
    x1 = np.array([[[1, 2], [3, 4]]], dtype=np.float32)
    good1 = json.dumps(T.infer_body(x1)).encode()
    url = d.url

    def binary_up2d(sess, rng):
        i = int(rng.integers(len(x2)))
        body, h = T.binary_request(x2[i].tobytes(), x2[i].shape, binary_output=True)
        r = sess.post(url("/v2/models/up2d/infer"), data=body, headers=h, timeout=60)
        ok = r.status_code == 200 and T.close(L.heavy_output(r), want2[i])[0]
        load.note("binary_up2d", ok, (r.status_code, r.text[:100]))

    def larger(sess, rng):
        if rng.integers(2):
            i = int(rng.integers(len(xm)))
            r = sess.post(url("/v2/models/mid/infer"), data=json.dumps(T.infer_body(xm[i])),
                          timeout=60)
            ok = r.status_code == 200 and T.close(T.output_array(r.json()), wantm[i],
                                                  rtol=1e-4, atol=1e-4)[0]
            load.note("mid_json", ok, (r.status_code, r.text[:100]))
        else:
            body, h = T.binary_request(xg.tobytes(), xg.shape, binary_output=True)
            r = sess.post(url("/v2/models/gen3d/infer"), data=body, headers=h, timeout=60)
            ok = r.status_code == 200 and L.heavy_output(r).shape == (1, 21, 21, 21, 4)
            load.note("gen3d_binary", ok, (r.status_code, r.text[:100]))

    bad = [("malformed", "POST", "/v2/models/up1d/infer", b'{"inputs":[', 400),
           ("unknown model", "POST", "/v2/models/nope/infer", good1, 404),
           ("escaping name", "GET", "/v2/models/..%2Fup1d", b"", 404),
           ("method", "DELETE", "/v2/models/up1d", b"", 405),
           ("NaN", "POST", "/v2/models/up1d/infer",
            good1.replace(b"4.0", b"NaN"), 400),
           ("shape", "POST", "/v2/models/up1d/infer", good1.replace(b"[1, 2, 2]", b"[1, 3, 2]"),
            400),
           ("deep", "POST", "/v2/models/up1d/infer", b"[" * 20000 + b"]" * 20000, 400)]

    def bad_requests(sess, rng):
        name, m, path, body, want = bad[int(rng.integers(len(bad)))]
        r = L.raw(d.port, L.http_req(m, path, body), timeout=30)       # fresh connection
        load.note("bad_" + name, L.is_json_error(r, (want,)), r)
        # 413 from Content-Length alone (to a client that waits for 100 Continue)
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        try:
            s.sendall(("POST /v2/models/up1d/infer HTTP/1.1\r\nHost: x\r\nExpect: "
                       "100-continue\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1)).encode())
            got = s.recv(4096)
        finally:
            s.close()
        rs = L.parse_responses(got)
        load.note("bad_413", rs and rs[0][0] == 413, got[:100])
        # upload cut mid-way (no answer expected), then a good chunked request
        s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        s.sendall(L.http_req("POST", "/v2/models/up1d/infer", good1)[:-20])
        s.close()
        r = L.raw(d.port, b"POST /v2/models/up1d/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:"
                  b" chunked\r\nConnection: close\r\n\r\n" + b"%x\r\n" % len(good1) + good1
                  + b"\r\n0\r\n\r\n", timeout=30)
        load.note("chunked", r.status == 200, r)
        time.sleep(0.05)

    def polls(sess, rng):
        r = sess.get(url("/v2/health/ready"), timeout=30)
        load.note("health", r.status_code == 200, r.status_code)
        r = sess.get(url("/metrics"), timeout=30)
        load.note("metrics", r.status_code == 200 and "deconvd_requests_total" in r.text,
                  r.status_code)
        time.sleep(0.2)

    for fn in (binary_up2d, binary_up2d, larger, bad_requests, polls):
        load.loop(fn)


def wrk_script(tmp, body):
    path = os.path.join(tmp, "post.lua")
    with open(path, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write('wrk.headers["Content-Type"] = "application/json"\n')
        f.write("wrk.body = %s\n" % json.dumps(body.decode()))
    return path


WRK_PROCS = []


def run_wrk(wrk, script, url, seconds, results):
    cmd = [wrk, "-t1", "-c4", "-d%ds" % max(1, int(seconds)), "--timeout", "10s", "--latency",
           "-s", script, url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    WRK_PROCS.append(p)
    try:
        out, _ = p.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    results.append(out)


def wrk_errors(out):
    """(requests, non-2xx, socket errors) from wrk's report."""
    import re
    req = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return (int(req.group(1)) if req else 0, int(non2xx.group(1)) if non2xx else 0,
            sum(int(g) for g in sock.groups()) if sock else 0)


def quiescent(d, load):
    """Pauses the clients, waits for no request in flight and every client
    connection gone; returns (rss_kb, fds)."""
    load.pause()
    L.wait_idle(d, 60)
    pid = d.proc.pid
    # polls use their own connection; wait for the daemon's idle timeout to close them all
    T.wait_until(lambda: (L.socket_fds(pid) or 0) <= 1, 30, 0.2)
    time.sleep(0.5)
    samples = []
    for _ in range(5):
        samples.append(L.rss_kb(pid))
        time.sleep(0.1)
    return sorted(samples)[2], L.fd_count(pid)


def main():
    rng = np.random.default_rng(51)
    mid_k = (rng.standard_normal((3, 3, 16, 16)) * 0.1).astype("<f4")
    mid_b = rng.standard_normal(16).astype("<f4")
    mid = {"class_name": "Conv2DTranspose",
           "config": {"name": "mid", "filters": 16, "kernel_size": 3, "strides": 2,
                      "padding": "same"},
           "weights": {"kernel": "mid.kernel.npy", "bias": "mid.bias.npy"}}
    wrk = shutil.which("wrk")
    tmp = tempfile.mkdtemp(prefix="dcvsoak-")
    print("# soak: %.0f s (warm-up %.0f s), wrk %s" % (SECONDS, WARMUP, wrk or "not installed"),
          flush=True)
    try:
        # connection_timeout_s well above the clients' think time: with 2 s a CPU-starved
        # Python client now and then reuses a kept-alive connection just as the daemon
        # closes it for idleness (the HTTP/1.1 keep-alive race; short timeouts are
        # tested in test_hostile.py)
        with L.RDaemon(config={"workers": 2, "threads_per_request": 1, "max_queue": 64,
                               "connection_timeout_s": 10, "max_body_bytes": MAX_BODY,
                               "log_level": "warn"},
                       models={"mid": mid}, npy={"mid.kernel.npy": mid_k, "mid.bias.npy": mid_b},
                       shipped=True, name="soak daemon") as d:
            d.start_quiet()
            pid = d.proc.pid
            load = Load(d)
            make_clients(load, d, mid_k, mid_b)
            x1 = np.array([[[1, 2], [3, 4]]], dtype=np.float32)
            script = wrk_script(tmp, json.dumps(T.infer_body(x1)).encode())
            wrk_out = []
            series = []

            def sample(stop):
                while not stop.is_set():
                    series.append((time.monotonic(), L.rss_kb(pid), L.fd_count(pid)))
                    stop.wait(1.0)

            sstop = threading.Event()
            sampler = T.Bg(sample, sstop)
            sampler.start()
            t_start = time.monotonic()
            for phase, secs in (("warm-up", WARMUP), ("main", SECONDS - WARMUP)):
                load.run.set()
                w = T.Bg(run_wrk, wrk, script, d.url("/v2/models/up1d/infer"), secs,
                         wrk_out) if wrk else None
                if w:
                    w.start()
                time.sleep(secs)
                if w:
                    w.join(secs + 90)
                rss, fds = quiescent(d, load)
                print("# soak: end of %s at %.0f s: RSS %d kB, %d fds" % (
                    phase, time.monotonic() - t_start, rss, fds), flush=True)
                if phase == "warm-up":
                    rss_w, fds_w = rss, fds
                else:
                    rss_e, fds_e = rss, fds
            load.finish()
            sstop.set()
            sampler.join(5)
            growth = 100.0 * (rss_e - rss_w) / rss_w
            total = sum(load.count.values())
            wreq = wnon = wsock = 0
            for out in wrk_out:
                a, b_, c = wrk_errors(out)
                wreq, wnon, wsock = wreq + a, wnon + b_, wsock + c
            rss_all = [s[1] for s in series if s[1]]
            fd_all = [s[2] for s in series if s[2]]
            L.figure("soak: duration / warm-up (s)", "%.0f / %.0f" % (SECONDS, WARMUP))
            L.figure("soak: python requests", "%d (%s)" % (total, ", ".join(
                "%s %d" % kv for kv in sorted(load.count.items()))))
            L.figure("soak: wrk requests / non-2xx / socket errors",
                     "%d / %d / %d" % (wreq, wnon, wsock) if wrk else "wrk not installed")
            L.figure("soak: RSS end of warm-up / end (kB), growth", "%d / %d, %+.2f%%"
                     % (rss_w, rss_e, growth))
            L.figure("soak: RSS min / max under load (kB)", "%d / %d"
                     % (min(rss_all), max(rss_all)))
            L.figure("soak: fds end of warm-up / end, min / max under load",
                     "%d / %d, %d / %d" % (fds_w, fds_e, min(fd_all), max(fd_all)))
            for out in wrk_out:
                for ln in out.splitlines():
                    if "Requests/sec" in ln or "Latency" in ln and "Distribution" not in ln:
                        print("# wrk: " + ln.strip(), flush=True)
            check("soak: zero unexpected errors in %d Python requests" % total,
                  total > 0 and not load.unexpected, load.unexpected[:5])
            if wrk:
                check("soak: wrk: %d requests, no non-2xx answer, no socket error" % wreq,
                      wreq > 0 and wnon == 0 and wsock == 0, wrk_out[-1][-1500:])
            else:
                T.R.skip("soak: wrk load", "wrk not installed (tests/robustness/install-deps)")
            check("soak: RSS growth %.2f%% < 2%% between the end of warm-up and the end"
                  % growth, growth < 2.0, (rss_w, rss_e))
            check("soak: fd count stable (%d after warm-up, %d at the end)" % (fds_w, fds_e),
                  fds_e <= fds_w, (fds_w, fds_e))
            check("soak: daemon alive and ready at the end",
                  d.alive() and requests.get(d.url("/v2/health/ready"), timeout=10).status_code
                  == 200, "")
    finally:
        for p in WRK_PROCS:                # ours only, by handle
            if p.poll() is None:
                p.kill()
                p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    L.main_guard(main, L.release_binary(), int(SECONDS) + 600)
