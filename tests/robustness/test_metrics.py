#!/usr/bin/python3
"""/metrics stays parseable and bounded whatever paths clients send (release
build: the lookup timings are meaningful there).

Hostile paths (%22 quotes, %5C backslashes, %0A newlines, raw backslashes,
unknown models and actions, 50 000 distinct paths) then:
- `promtool check metrics` accepts /metrics (skipped when Debian's
  prometheus package cannot be installed), and prometheus_client's parser
  reads every sample back with exactly the labels written, every endpoint
  label from the router's table and every model label a loaded model or "";
- the series count and the body size stay bounded (figures printed): the
  counters are bounded by (models + 1) x endpoints x status codes, not by
  the paths requested;
- counting stays as fast at the end of the 50 000 paths as at the start
  (the best of a few batches each way, a ratio, not an absolute speed).
"""
import shutil
import socket
import subprocess
import time

import numpy as np

import rlib as L

T = L.T
check = L.check

# The router's endpoint names (include/deconvd/metrics.h, DCV_ENDPOINTS).
ENDPOINTS = {"other", "health", "metrics", "server_metadata", "stats", "metadata", "infer",
             "ready", "config", "shape", "ops", "repository_index", "load", "unload", "shm",
             "shm_status", "shm_register", "shm_unregister", "cuda_shm", "tfs_predict",
             "tfs_status", "tfs_metadata"}
MODELS = {"", "up1d", "up2d"}
DISTINCT = 50000
BATCH = 500
HOSTILE = [
    ("GET", "/v2/models/up1d/x%22y"),
    ("GET", "/v2/models/up1d/a%5Cb"),
    ("GET", "/v2/models/up1d/a\\b"),
    ("GET", "/v2/models/up1d/n%0Aline"),
    ("GET", "/v2/models/up1d/%5C%22%0A%7D%20x"),
    ("GET", "/v2/models/up1d/versions/1/x%22y"),
    ("GET", "/v2/models/up1d/metadata"),
    ("GET", "/v2/models/up1d/health"),
    ("POST", "/v2/models/no%22such/infer"),
    ("POST", "/v2/models/no%5Csuch/infer"),
    ("GET", "/v2/models/a%0Ab/ready"),
    ("POST", "/v1/models/q%22:predict"),
    ("GET", "/v1/models/q%22/metadata"),
    ("POST", "/v2/repository/models/a%22b/load"),
    ("POST", "/v2/systemsharedmemory/x%22y"),
    ("POST", "/v2/ops/x%22y"),
    ("GET", "/x%22y"),
    ("GET", "/v2/%22"),
]
X = np.array([[[1, 2], [3, 4]]], dtype=np.float32)


def pipeline(port, paths):
    """GETs every path on one connection, pipelined BATCH at a time; returns
    the seconds each batch took and the number of answers read."""
    times, answered = [], 0
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        for i in range(0, len(paths), BATCH):
            chunk = paths[i:i + BATCH]
            req = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in chunk)
            t0 = time.monotonic()
            s.sendall(req)
            got = b""
            while got.count(b"HTTP/1.1 ") < len(chunk):
                c = s.recv(1 << 20)
                if not c:
                    raise OSError("connection closed after %d answers" % answered)
                got += c
            times.append(time.monotonic() - t0)
            answered += len(chunk)
    finally:
        s.close()
    return times, answered


def series(text):
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")]


def check_promtool(body, what):
    if not shutil.which("promtool"):
        T.R.skip("promtool check metrics (%s)" % what,
                 "no promtool: apt-get install prometheus (tests/robustness/install-deps)")
        return
    p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                       timeout=60)
    check("promtool check metrics accepts /metrics (%s)" % what, p.returncode == 0,
          (p.returncode, p.stdout[-800:], p.stderr[-800:]))


def check_client_parser(text, what):
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        T.R.skip("prometheus_client parses /metrics (%s)" % what,
                 "no prometheus_client: apt-get install python3-prometheus-client")
        return
    try:
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    except Exception as e:  # noqa: BLE001  (any parse error is the failure)
        check("prometheus_client parses /metrics (%s)" % what, False, repr(e))
        return
    check("prometheus_client parses /metrics (%s): %d samples, one per sample line"
          % (what, len(samples)), len(samples) == len(series(text)),
          (len(samples), len(series(text))))
    req = [s for s in samples if s.name == "deconvd_requests_total"]
    bad = [s.labels for s in req if set(s.labels) != {"model", "endpoint", "code"} or
           s.labels["endpoint"] not in ENDPOINTS or s.labels["model"] not in MODELS or
           not s.labels["code"].isdigit()]
    check("every deconvd_requests_total sample has model, endpoint, code from the closed "
          "sets (%s; %d samples)" % (what, len(req)), req and not bad, bad[:10])


def test_metrics():
    with L.RDaemon(shipped=["up1d", "up2d"], name="metrics daemon") as d:
        d.start()
        d.post("/v2/models/up1d/infer", body=T.infer_body(X))
        d.get("/v2/models/up1d/x%22y")
        before = d.get("/metrics").content
        L.figure("metrics body before the hostile paths (bytes)", len(before))

        codes = []
        for method, path in HOSTILE:
            r = L.raw(d.port, L.http_req(method, path))
            codes.append(r.status)
        check("every hostile path is answered (a 4xx, no crash): %s" % codes,
              all(c is not None and 400 <= c < 500 for c in codes), codes)
        # unknown models: one catch-all model label, not one series each
        unknown = ["/v2/models/nomodel%d/ready" % i for i in range(2000)]
        _, n = pipeline(d.port, unknown)
        check("2000 unknown model names answered", n == len(unknown), n)

        paths = ["/v2/models/up1d/p%d" % i for i in range(DISTINCT)]
        t0 = time.monotonic()
        times, n = pipeline(d.port, paths)
        dt = time.monotonic() - t0
        check("%d distinct paths answered" % DISTINCT, n == DISTINCT, n)
        L.figure("%d distinct paths (s)" % DISTINCT, "%.2f" % dt)
        # Lookups: the best of the first 5 batches against the best of the
        # last 5 (one series per path made the last ones ~25x slower).
        first, last = min(times[:5]), min(times[-5:])
        ratio = last / first if first > 0 else float("inf")
        L.figure("per-request time, last vs first %d distinct paths (ratio)" % (5 * BATCH),
                 "%.2f (%.1f vs %.1f us)" % (ratio, last / BATCH * 1e6, first / BATCH * 1e6))
        check("counting the last paths is not slower than the first (ratio %.2f < 3)" % ratio,
              ratio < 3, times[:5] + times[-5:])

        r = d.get("/metrics")
        body, text = r.content, r.text
        req = [ln for ln in series(text) if ln.startswith("deconvd_requests_total{")]
        L.figure("metrics body after the hostile paths (bytes)", len(body))
        L.figure("deconvd_requests_total series after %d distinct paths" % DISTINCT, len(req))
        # (models + 1) x endpoints x codes is the bound; what ran here needs
        # a handful: the body stays near its size before.
        check("deconvd_requests_total series stay few (%d <= 40)" % len(req), len(req) <= 40,
              req[:60])
        check("/metrics body grew by less than 4 KB (%d -> %d bytes)" % (len(before), len(body)),
              len(body) - len(before) < 4096, len(body))
        check("the distinct paths are counted in one series: %s"
              % 'model="up1d",endpoint="other",code="404"',
              any(ln.startswith('deconvd_requests_total{model="up1d",endpoint="other",'
                                'code="404"} ') and int(ln.split()[-1]) >= DISTINCT
                  for ln in req), req)
        check("no raw quote or backslash from a path in /metrics",
              b'x"y' not in body and b"a\\b" not in body, body[:2000])
        check_promtool(body, "after hostile paths")
        check_client_parser(text, "after hostile paths")
        check("daemon still healthy", L.health_ok(d.port))


def main():
    T.R.run(test_metrics)


if __name__ == "__main__":
    L.main_guard(main, L.release_binary(), 300)
