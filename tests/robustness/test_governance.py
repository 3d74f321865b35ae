#!/usr/bin/python3
"""Resource governance (issue 11), against the release build (RSS figures
are meaningful there): no single request, client or upload may stall the
event loop, exhaust memory or hold a worker past its bounds.

Each attack runs while a separate client polls /v2/health/live every 10 ms
on its own connection; the goal is p99 < 50 ms. Memory: RSS stays under a
bound computed from the config (docs/security.md "Memory bound"), and comes
back to within 64 MB of idle afterwards.

- loop: /v2/shape and /v2/models/{m}/shape bodies of 10 and 60 MB; a small
  body naming a big shared-memory tensor through a JSON escape
  ("shared\\u005fmemory_region"), which used to be computed on the loop;
- memory: 40 partial 60 MB uploads (global budget: 503 + Retry-After past
  it, at once for Expect: 100-continue); a 107-byte ops request whose
  JSON answer would be 134 MB (max_response_bytes); slow readers of big
  answers (cut at min_transfer_rate, budget held meanwhile);
- compute: max_work refusals naming both numbers; clients that leave
  (queued job never started, running one stopped at its next checkpoint);
  request_timeout_ms firing on time for a queued job; SIGTERM drain as a
  hard bound, answering 503 and counting the cut upload;
- clients: early 413 / 401 / 503 received as statuses (not a broken pipe)
  by Python http.client, urllib, requests and Node's fetch.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import requests

import rlib as L

T = L.T
check = L.check

RETURN_MB = 64
RNG = np.random.default_rng(1101)


# ------------------------------------------------------------------ probes

class RssPeak:
    def __init__(self, pid):
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, L.rss_kb(self.pid) or 0)
            time.sleep(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)
        return False


def rss_mb(d):
    return (L.rss_kb(d.proc.pid) or 0) / 1024


def memory_bound_mb(cfg, idle_mb):
    """docs/security.md "Memory bound": idle + memory_budget_bytes +
    buffer_cache_bytes + (workers + 1) JSON trees of max_json_nodes at
    160 bytes + 40 KiB per connection + 48 MB for the engine's scratch,
    thread stacks and allocator slack."""
    workers = cfg.get("workers", 2)
    nodes = cfg.get("max_json_nodes", 65536)
    conns = cfg.get("max_connections", 1024)
    return (idle_mb + cfg["memory_budget_bytes"] / 2**20 +
            cfg.get("buffer_cache_bytes", 64 << 20) / 2**20 +
            (workers + 1) * nodes * 160 / 2**20 + conns * 40 / 1024 + 48)


def budget_used(d):
    return L.metric(d, 'deconvd_memory_budget_bytes{state="used"}')


def memory_checks(d, cfg, idle_mb, peak_kb, what):
    used = []
    T.wait_until(lambda: used.append(budget_used(d)) or used[-1] == 0, timeout=25, step=0.2)
    check("%s: every byte taken from the memory budget was given back (used %s)"
          % (what, used[-1]), used[-1] == 0, used[-5:])
    bound = memory_bound_mb(cfg, idle_mb)
    L.figure("%s: RSS idle / peak / bound from the config (MB)" % what,
             "%.0f / %.0f / %.0f" % (idle_mb, peak_kb / 1024, bound))
    check("%s: RSS peak %.0f MB below the bound from the config (%.0f MB)"
          % (what, peak_kb / 1024, bound), 0 < peak_kb / 1024 < bound, "")
    # freed buffers stay cached up to 10 s (buffer_cache_bytes), then go
    got = []
    ok = T.wait_until(lambda: got.append(rss_mb(d)) or got[-1] <= idle_mb + RETURN_MB,
                      timeout=25, step=0.5)
    L.figure("%s: RSS after (MB)" % what, "%.0f" % (got[-1] if got else -1))
    check("%s: RSS back within %d MB of idle (%.0f -> %.0f MB)"
          % (what, RETURN_MB, idle_mb, got[-1] if got else -1), ok, got[-5:])


# --------------------------------------------------------------- requests

def kserve(x):
    return T.infer_body(x)


def shape_junk_body(mb, model=False):
    """A shape request padded with a big array of zeros (5 values per
    10 bytes), which cJSON used to turn into one node per value."""
    n = mb * (1 << 20) // 2
    junk = b"[" + b"0," * (n - 1) + b"0]"
    head = b'{"input_shape":[null,8,3],'
    if not model:
        head += (b'"class_name":"Conv1DTranspose","config":{"filters":2,"kernel_size":3,'
                 b'"strides":2,"padding":"same"},')
    return head + b'"junk":' + junk + b"}"


def post_raw(port, path, body, headers=None, timeout=60):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return L.raw(port, L.http_req("POST", path, body, h), timeout=timeout)


# ------------------------------------------------------------------- loop

def test_loop_shape_bodies():
    cfg = {"workers": 2, "memory_budget_bytes": 512 << 20, "max_connections": 64}
    with L.RDaemon(config=cfg, shipped=["up1d"], name="governance shape daemon") as d:
        d.start()
        time.sleep(0.3)
        idle = rss_mb(d)
        with RssPeak(d.proc.pid) as peak:
            for mb in (10, 60):
                for path, model in (("/v2/shape", False), ("/v2/models/up1d/shape", True)):
                    body = shape_junk_body(mb, model)
                    what = "loop: %s with a %d MB body" % (path, mb)
                    rs, t0 = [], time.monotonic()
                    with L.HealthProbe(d.port) as hp:     # for 2 s at least
                        while not rs or time.monotonic() - t0 < 2:
                            t1 = time.monotonic()
                            rs.append((post_raw(d.port, path, body, timeout=120),
                                       time.monotonic() - t1))
                    L.figure(what + ": requests, status, seconds each (max)",
                             "%d, %s, %.2f" % (len(rs), rs[0][0].status, max(r[1] for r in rs)))
                    check(what + ": refused 413 naming max_json_nodes (%d requests)" % len(rs),
                          all(r.status == 413 and b"max_json_nodes" in r.body for r, _ in rs),
                          rs[0][0].body[:300])
                    hp.verdict(what)
            r = d.post("/v2/shape", {"class_name": "Conv1DTranspose", "input_shape": [None, 8, 3],
                                     "config": {"filters": 2, "kernel_size": 3, "strides": 2,
                                                "padding": "same"}})
            check("loop: a normal /v2/shape still answers (output [-1,16,2])",
                  r.status_code == 200 and r.json().get("output_shape") == [-1, 16, 2], r.text)
        memory_checks(d, cfg, idle, peak.peak, "loop: shape bodies")


def shm_available():
    return os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK)


def test_loop_shm_escape():
    if not shm_available():
        T.R.skip("loop: escaped shared_memory_region", "/dev/shm is not writable here")
        return
    rng = np.random.default_rng(5)
    doc, npy, ker, b = L.heavy_model(rng)
    cfg = {"workers": 1, "threads_per_request": 1, "shared_memory": True}
    with L.RDaemon(config=cfg, models={"heavy": doc}, npy=npy,
                   name="governance shm daemon") as d:
        d.start()
        side, dt = L.calibrate(d, 1.5)
        x = rng.standard_normal((1, side, side, L.HEAVY_C)).astype("<f4")
        key = "/dcv_gov_%d" % os.getpid()
        path = "/dev/shm" + key
        nbytes = x.nbytes
        with open(path, "wb") as f:
            f.write(x.tobytes())
            f.truncate(2 * nbytes)
        try:
            r = d.post("/v2/systemsharedmemory/region/gov/register",
                       {"key": key, "offset": 0, "byte_size": 2 * nbytes})
            check("loop: shm region registered", r.status_code == 200, r.text)
            # the escape: a byte search for "shared_memory" does not see it
            body = ('{"inputs":[{"name":"input","shape":%s,"datatype":"FP32","parameters":'
                    '{"shared\\u005fmemory_region":"gov","shared_memory_byte_size":%d}}],'
                    '"outputs":[{"name":"output","parameters":{"shared_memory_region":"gov",'
                    '"shared_memory_byte_size":%d,"shared_memory_offset":%d}}]}'
                    % (json.dumps(list(x.shape)), nbytes, nbytes, nbytes)).encode()
            with L.HealthProbe(d.port) as hp:
                t0 = time.monotonic()
                r = d.post("/v2/models/heavy/infer", data=body, timeout=120)
                took = time.monotonic() - t0
            what = "loop: %d-byte body naming a %.0f MB shared-memory input via \\u005f" % (
                len(body), nbytes / 2**20)
            L.figure(what + ": compute seconds", "%.2f" % took)
            check(what + ": answered 200", r.status_code == 200, r.text[:300])
            out = np.fromfile(path, dtype="<f4", count=x.size, offset=nbytes).reshape(x.shape)
            ok, why = T.heavy_check(out, x, ker, b, rng)
            check(what + ": output in the region is right", ok, why)
            hp.verdict(what + " (computed on a worker)")
        finally:
            os.unlink(path)


# ----------------------------------------------------------------- memory

def test_memory_partial_uploads():
    cfg = {"workers": 2, "memory_budget_bytes": 256 << 20, "max_body_bytes": 64 << 20,
           "connection_timeout_s": 3, "min_transfer_rate": 1 << 20, "max_connections": 128}
    announced, sent, n = 60_000_000, 3 << 20, 40
    with L.RDaemon(config=cfg, shipped=["up1d"], name="governance uploads daemon") as d:
        d.start()
        time.sleep(0.3)
        idle = rss_mb(d)
        socks, firsts = [], []
        with RssPeak(d.proc.pid) as peak, L.HealthProbe(d.port) as hp:
            for i in range(n):
                s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
                s.sendall(("POST /v2/models/up1d/infer HTTP/1.1\r\nHost: x\r\n"
                           "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                           "Content-Length: %d\r\n\r\n" % announced).encode())
                s.settimeout(5)
                try:
                    first = s.recv(4096)
                except OSError as e:
                    first = repr(e).encode()
                firsts.append(first)
                if first.startswith(b"HTTP/1.1 100"):
                    s.sendall(b" " * sent)          # then stall
                socks.append(s)
            accepted = sum(f.startswith(b"HTTP/1.1 100") for f in firsts)
            refused = [f for f in firsts if f.startswith(b"HTTP/1.1 503")]
            time.sleep(1.0)
            r = d.post("/v2/models/up1d/infer", kserve(np.ones((1, 2, 2), np.float32)))
            served = r.status_code
            # stalled uploads are cut at connection_timeout_s + sent/min_transfer_rate
            t0 = time.monotonic()
            cut = 0
            for s in socks:
                s.settimeout(max(0.1, 12 - (time.monotonic() - t0)))
                try:
                    while s.recv(65536):
                        pass
                    cut += 1
                except OSError:
                    cut += 1
                s.close()
            cut_s = time.monotonic() - t0
        L.figure("memory: 40 partial 60 MB uploads: accepted / 503 / other",
                 "%d / %d / %d" % (accepted, len(refused), n - accepted - len(refused)))
        check("memory: uploads beyond memory_budget_bytes (256 MiB) refused: %d of %d accepted "
              "(<= 4)" % (accepted, n), 1 <= accepted <= 4, firsts[:3])
        check("memory: the refusals are 503 with Retry-After and a JSON error, before the body",
              len(refused) == n - accepted and all(b"Retry-After: 1" in f and
                                                     b"memory_budget_bytes" in f
                                                     for f in refused), refused[:2])
        check("memory: a normal inference is served while the uploads hold the budget",
              served == 200, served)
        check("memory: stalled uploads cut within connection_timeout_s + sent / "
              "min_transfer_rate (%.1f s)" % cut_s, cut == n and cut_s < 10, (cut, cut_s))
        hp.verdict("memory: 40 partial 60 MB uploads")
        memory_checks(d, cfg, idle, peak.peak, "memory: partial uploads")


def test_memory_big_trees():
    """Trees within a raised max_json_nodes (TF Serving instances as objects
    stay in the tree: ~3 nodes each): glibc kept the freed heap of
    concurrent big trees for good (397 MB here) until a trim."""
    cfg = {"workers": 2, "max_json_nodes": 4_000_000, "memory_budget_bytes": 1 << 30,
           "max_connections": 64}
    inst = b'{"input":[[1.5,2.5]]}'
    big = b'{"instances":[' + b",".join([inst] * 700_000) + b"]}"
    small = b'{"instances":[' + b",".join([inst] * 3000) + b"]}"
    with L.RDaemon(config=cfg, shipped=["up1d"], name="governance trees daemon") as d:
        d.start()
        time.sleep(0.3)
        idle = rss_mb(d)
        stop, codes = threading.Event(), []

        def post(body):
            try:
                codes.append(d.post("/v1/models/up1d:predict", data=body, timeout=300)
                             .status_code)
            except requests.RequestException as e:
                codes.append(repr(e))

        def smalls():
            while not stop.is_set():
                post(small)
        with RssPeak(d.proc.pid) as peak, L.HealthProbe(d.port) as hp:
            bg = [T.Bg(smalls) for _ in range(2)]
            bigs = [T.Bg(post, big) for _ in range(4)]
            for t in bg + bigs:
                t.start()
            for t in bigs:
                t.join(300)
            stop.set()
            for t in bg:
                t.join(60)
        check("memory: 4 requests of 2.1M-node trees beside small ones: all 200",
              codes and all(c == 200 for c in codes), sorted(set(map(str, codes))))
        hp.verdict("memory: big JSON trees")
        memory_checks(d, cfg, idle, peak.peak, "memory: big JSON trees")


def ops3d_amplifier(side):
    """107 bytes asking for a side^3 output from a 1-value input."""
    return json.dumps({"input": [[[[[1.5]]]]], "filters": [[[[[0.25]]]]],
                       "output_shape": [1, side, side, side, 1], "strides": side,
                       "padding": "SAME"}, separators=(",", ":")).encode()


def test_memory_answers():
    cfg = {"workers": 2, "memory_budget_bytes": 512 << 20, "max_response_bytes": 32 << 20,
           "connection_timeout_s": 2, "min_transfer_rate": 4 << 20, "max_connections": 64,
           "buffer_cache_bytes": 16 << 20}
    with L.RDaemon(config=cfg, shipped=["up1d"], name="governance answers daemon") as d:
        d.start()
        time.sleep(0.3)
        idle = rss_mb(d)
        with RssPeak(d.proc.pid) as peak:
            body = ops3d_amplifier(200)
            t0 = time.monotonic()
            r = post_raw(d.port, "/v2/ops/conv3d_transpose", body)
            dt = time.monotonic() - t0
            what = "memory: %d-byte ops request for an 8M-value JSON answer" % len(body)
            check(what + ": 413 naming max_response_bytes at once (%s, %.2f s)" % (r.status, dt),
                  r.status == 413 and b"max_response_bytes" in r.body and dt < 1, r.body[:300])
            # answers that fit, read slowly: the budget bounds them, the
            # transfer rate cuts them (~10 MB of JSON each: more than the
            # kernel's socket buffers take, so the rest waits in ours)
            x = RNG.standard_normal((1, 500_000, 2)).astype(np.float32)
            body = json.dumps(kserve(x)).encode()
            results = []

            def slow_reader():
                s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.sendall(L.http_req("POST", "/v2/models/up1d/infer", body,
                                     {"Content-Type": "application/json"}))
                got, t0 = b"", time.monotonic()
                try:
                    while time.monotonic() - t0 < 12:
                        c = s.recv(1024)
                        if not c:
                            break
                        got += c
                        time.sleep(0.05)            # ~20 KB/s
                except OSError:
                    pass
                s.close()
                results.append(got[:12])

            with L.HealthProbe(d.port) as hp:
                ts = [T.Bg(slow_reader) for _ in range(12)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(60)
            codes = [g[9:12] for g in results]
            L.figure("memory: 12 slow readers of ~10 MB answers: statuses",
                     ",".join(sorted(c.decode("latin-1") for c in codes)))
            check("memory: slow readers get 200 (cut later) or 503 while the budget is held",
                  len(results) == 12 and all(c in (b"200", b"503") for c in codes), codes)
            # the access log: answers cut at connection_timeout_s (2) + ~10 MB at
            # min_transfer_rate (4 MiB/s), i.e. about 4.5 s after they were ready
            cut = [ln for ln in d.log().splitlines() if "path=/v2/models/up1d/infer" in ln
                   and "status=200" in ln and "outcome=timeout" in ln]
            ms = [float(ln.split(" ms=")[1].split()[0]) for ln in cut]
            L.figure("memory: slow readers cut, and after (s)",
                     "%d, %s" % (len(cut), ",".join("%.1f" % (m / 1e3) for m in sorted(ms))))
            check("memory: slow readers are cut near connection_timeout_s + answer / "
                  "min_transfer_rate (%d cut, max %.1f s)" % (len(cut), max(ms or [0]) / 1e3),
                  len(cut) >= 3 and all(m < 9000 for m in ms), cut[:3])
            hp.verdict("memory: 12 slow readers")
        memory_checks(d, cfg, idle, peak.peak, "memory: answers")


# ---------------------------------------------------------------- compute

def test_compute_max_work():
    with L.RDaemon(config={"max_work": 10_000_000}, shipped=["up1d"],
                   name="governance work daemon") as d:
        d.start()
        body = json.dumps({"input": np.zeros((1, 64, 64, 64), np.float32).tolist(),
                           "filters": np.zeros((5, 5, 64, 64), np.float32).tolist(),
                           "output_shape": [1, 128, 128, 64], "strides": 2,
                           "padding": "SAME"}).encode()
        t0 = time.monotonic()
        r = post_raw(d.port, "/v2/ops/conv2d_transpose", body)
        dt = time.monotonic() - t0
        want = 64 * 64 * 64 * 64 * 25
        check("compute: an op needing %d multiply-adds gets 413 naming max_work and both "
              "numbers (%.2f s)" % (want, dt),
              r.status == 413 and b"max_work" in r.body and str(want).encode() in r.body
              and b"10000000" in r.body, r.body[:300])
        x = np.zeros((1, 3000, 2), np.float32)
        r = d.post("/v2/models/up1d/infer", kserve(x))
        check("compute: an inference within max_work (18000 multiply-adds) is served",
              r.status_code == 200, r.text[:200])
        x = np.zeros((1, 2_000_000, 2), np.float32)
        bb, bh = T.binary_request(x.tobytes(), x.shape)
        r = d.post("/v2/models/up1d/infer", data=bb, headers=bh)
        check("compute: an inference needing 12000000 multiply-adds gets 413 naming max_work",
              r.status_code == 413 and "max_work" in r.text and "12000000" in r.text,
              r.text[:300])


BATCH_C = 128


def heavy_batch_daemon(cfg, name):
    """The heavy model with much work per input byte (128 channels,
    15x15 kernel: 3.7M multiply-adds a pixel), so that seconds of work
    fit in small bodies; max_work raised to allow them."""
    rng = np.random.default_rng(9)
    doc, npy, ker, b = L.heavy_model(rng, c=BATCH_C, k=15)
    cfg = dict(cfg, max_work=10 ** 13, max_body_bytes=256 << 20, max_response_bytes=256 << 20)
    return L.RDaemon(config=cfg, models={"heavy": doc}, npy=npy, shipped=["up1d"], name=name)


def heavy_batch(d, seconds, batch=8):
    """A binary request of `batch` images taking about `seconds` s."""
    side, dt = L.calibrate(d, seconds / batch, c=BATCH_C)
    x = np.zeros((batch, side, side, BATCH_C), np.float32)
    heavy_batch.macs = batch * side * side * BATCH_C * BATCH_C * 15 * 15
    return L.heavy_body(x)


def send_and_leave(port, body, headers, after):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(L.http_req("POST", "/v2/models/heavy/infer", body, headers))
    time.sleep(after)
    s.close()


def test_compute_clients_leave():
    cfg = {"workers": 1, "threads_per_request": 1, "max_queue": 8}
    with heavy_batch_daemon(cfg, "governance leave daemon") as d:
        d.start()
        body, h = heavy_batch(d, 3.0)
        t0 = time.monotonic()
        r = d.post("/v2/models/heavy/infer", data=body, headers=h, timeout=120)
        alone = time.monotonic() - t0
        check("compute: the heavy batch request alone: 200", r.status_code == 200, r.text[:200])
        a = T.Bg(send_and_leave, d.port, body, h, 0.5)     # running, then gone
        a.start()
        time.sleep(0.2)
        b = T.Bg(send_and_leave, d.port, body, h, 0.3)     # queued, then gone
        b.start()
        a.join(10)
        b.join(10)
        t0 = time.monotonic()
        r = d.post("/v2/models/heavy/infer", data=body, headers=h, timeout=120)
        after = time.monotonic() - t0
        L.figure("compute: heavy request alone / after two clients left (s)",
                 "%.2f / %.2f" % (alone, after))
        L.figure("compute: seconds for 10^11 multiply-adds on one thread (the default max_work)",
                 "%.1f" % (1e11 / (heavy_batch.macs / alone)))
        check("compute: after two clients left (one running, one queued), a new request "
              "waits for neither (%.2f s, alone %.2f s)" % (after, alone),
              r.status_code == 200 and after < 1.25 * alone + 0.3, r.status_code)
        log = d.log()
        check("compute: the access log shows both left requests as client_abort",
              log.count("outcome=client_abort") >= 2, log[-2000:])


def test_compute_deadline_on_time():
    cfg = {"workers": 1, "threads_per_request": 1, "request_timeout_ms": 1000,
           "inline_max_work": 0}
    with heavy_batch_daemon(cfg, "governance deadline daemon") as d:
        d.start()
        big, hb = heavy_batch(d, 4.0)
        # heavy_batch calibrated at 0.5 s a request is under the deadline
        a = T.Bg(lambda: d.post("/v2/models/heavy/infer", data=big, headers=hb, timeout=120))
        a.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        r = d.post("/v2/models/up1d/infer", kserve(np.ones((1, 2, 2), np.float32)), timeout=60)
        dt = time.monotonic() - t0
        a.join(60)
        L.figure("compute: 504 of a queued request with request_timeout_ms 1000 after (s)",
                 "%.2f" % dt)
        check("compute: a queued request gets its 504 on time (%.2f s, deadline 1.0 s)" % dt,
              r.status_code == 504 and "request_timeout_ms" in r.text and 0.9 <= dt < 1.6,
              (r.status_code, r.text[:200]))
        check("compute: the running request still completes 200",
              getattr(a.result, "status_code", None) == 200, repr(a.result))


def test_compute_drain_hard_bound():
    cfg = {"workers": 1, "threads_per_request": 1, "drain_timeout_ms": 2000}
    with heavy_batch_daemon(cfg, "governance drain daemon") as d:
        d.start()
        body, h = heavy_batch(d, 8.0, batch=16)
        a = T.Bg(lambda: requests.post(d.url("/v2/models/heavy/infer"), data=body, headers=h,
                                       timeout=60))
        a.start()
        time.sleep(0.5)
        up = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        up.sendall(b"POST /v2/models/up1d/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000"
                   b"\r\n\r\n" + b" " * 1000)
        time.sleep(0.3)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        try:
            code = d.proc.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        took = time.monotonic() - t0
        a.join(20)
        up.close()
        log = d.log()
        L.figure("compute: SIGTERM with an 8 s job in flight, drain_timeout_ms 2000: exit after "
                 "(s)", "%.2f" % took)
        check("compute: the drain is a hard bound: exit 0 within drain_timeout_ms + 0.3 s "
              "(%.2f s)" % took, code == 0 and took < 2.3, (code, log[-1500:]))
        res = a.result
        check("compute: the request still running is answered 503 with a JSON error",
              getattr(res, "status_code", None) == 503 and "drain_timeout_ms" in res.text,
              repr(res) if not hasattr(res, "text") else res.text[:200])
        check("compute: the log counts the job and the cut upload as abandoned (abandoned=2)",
              "abandoned=2" in log, log[-1500:])
        d.proc = None                                     # already stopped


# ---------------------------------------------------------------- clients

NODE_POST = r"""
const [url, n, token] = process.argv.slice(2);
const body = Buffer.alloc(Number(n), 32);
const headers = {"Content-Type": "application/json"};
if (token) headers["Authorization"] = "Bearer " + token;
try {
  const r = await fetch(url, {method: "POST", body, headers});
  const t = await r.text();
  console.log(JSON.stringify({status: r.status, body: t}));
} catch (e) {
  console.log(JSON.stringify({error: String(e.cause || e)}));
}
"""


def client_post(kind, url, n, token=None):
    """(status or error text, body) of a POST of n bytes with each client."""
    data = b" " * n
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        if kind == "requests":
            r = requests.post(url, data=data, headers=headers, timeout=60)
            return r.status_code, r.text
        if kind == "urllib":
            req = urllib.request.Request(url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
        if kind == "http.client":
            u = urllib.parse.urlsplit(url)
            c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            c.request("POST", u.path, body=data, headers=headers)
            r = c.getresponse()
            return r.status, r.read().decode()
        if kind == "curl":
            with tempfile.NamedTemporaryFile(delete=False) as f:
                f.write(data)
            try:
                cmd = ["curl", "-s", "-S", "-X", "POST", "--data-binary", "@" + f.name,
                       "-H", "Content-Type: application/json", "-w", "\n%{http_code}", url]
                if token:
                    cmd[1:1] = ["-H", "Authorization: Bearer " + token]
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            finally:
                os.unlink(f.name)
            body, _, code = out.stdout.rpartition("\n")
            return (int(code) if code.isdigit() else out.stderr.strip()), body
        if kind == "node":
            with tempfile.NamedTemporaryFile("w", suffix=".mjs", delete=False) as f:
                f.write(NODE_POST)
            try:
                out = subprocess.run(["node", f.name, url, str(n), token or ""],
                                     capture_output=True, text=True, timeout=120).stdout
            finally:
                os.unlink(f.name)
            res = json.loads(out.strip().splitlines()[-1])
            return res.get("status", res.get("error")), res.get("body", "")
    except Exception as e:                     # noqa: BLE001
        return repr(e), ""
    return "unknown client", ""


def test_clients_early_refusals():
    clients = ["http.client", "urllib", "requests", "curl"]
    if subprocess.run(["node", "--version"], capture_output=True).returncode == 0:
        clients.append("node")
    else:
        T.R.skip("clients: Node fetch", "node is not installed")
    token = "s3cret-gov"
    with L.RDaemon(config={"max_body_bytes": 4 << 20, "auth_token": token, "max_queue": 0,
                           "workers": 1}, shipped=["up1d"],
                   name="governance clients daemon") as d:
        d.start()
        cases = [(413, "/v2/models/up1d/infer", 6 << 20, token, "max_body_bytes"),
                 (401, "/v2/models/up1d/infer", 8 << 20, None, "token"),
                 (503, "/v2/ops/conv1d_transpose", 1 << 20, token, "busy"),
                 (503, "/v2/ops/conv1d_transpose", 3 << 20, token, "busy")]
        for want, path, n, tok, word in cases:
            for c in clients:
                st, body = client_post(c, d.url(path), n, tok)
                check("clients: %s gets %d (not a broken pipe) for a %d MB body (%s)"
                      % (c, want, n >> 20, word), st == want and word in body,
                      (st, body[:200]))
        r = d.get("/v2/health/live")
        check("clients: daemon serves after the refusals", r.status_code == 200, r.text)


def main():
    only = [t for t in os.environ.get("GOV_TESTS", "").split(",") if t]
    for fn in (test_loop_shape_bodies, test_loop_shm_escape, test_memory_partial_uploads,
               test_memory_big_trees, test_memory_answers, test_compute_max_work, test_compute_clients_leave,
               test_compute_deadline_on_time, test_compute_drain_hard_bound,
               test_clients_early_refusals):
        if not only or fn.__name__ in only:
            T.R.run(fn)


if __name__ == "__main__":
    L.main_guard(main, L.release_binary(), 900)
