#!/usr/bin/python3
"""test_lifecycle.py — deconvd's command line, signals and behaviour under
stress, black-box.

CLI: --help/--version/--check, usage and config errors (exit 2).
Signals: SIGTERM drains an in-flight request (200, exit 0, draining/drained
logged); SIGHUP reloads the models dir (changed weights swap in with a new
version, a broken file keeps the old version serving, a new file appears, a
removed file goes away). Overload: workers 1 + max_queue 1 gives 503 with
Retry-After, everything else 200 and correct. request_timeout_ms gives 504.
Clients vanishing mid-request do not disturb the daemon.

The heavy model's cost is calibrated at run time (input size grown until one
request takes ~0.4-0.8 s) so the timing-based checks hold on slow and fast
machines alike; in slow mode (valgrind, see dcvtest.py) the target time and
every limit scale by T.SLOW, and each CLI run of the binary is memchecked too.
Prints one line per check and "N passed, N failed".
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check, close  # noqa: E402

RNG = np.random.default_rng(99)
BIN = T.binary_path()
SHIPPED_CONFIG = os.path.join(T.ROOT, "config", "deconvd.json")


def run_cli(*args, timeout=30):
    # in slow mode under the wrapper (valgrind: one memcheck check per run)
    what = "cli " + " ".join(os.path.basename(a) for a in args)
    cmd, vglog = T.wrapped(what)
    p = subprocess.run(cmd + list(args), capture_output=True, timeout=T.t(timeout),
                       stdin=subprocess.DEVNULL)
    T.check_valgrind(what, vglog)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


# --------------------------------------------------------------------- CLI

def test_cli():
    tmp = tempfile.mkdtemp(prefix="dcvcli-")
    try:
        cli_checks(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cli_checks(tmp):
    rc, out, err = run_cli("--help")
    check("--help: exit 0, usage on stdout", rc == 0 and "usage" in out.lower()
          and "--config" in out and "--check" in out, (rc, out, err))
    rc, out, err = run_cli("-h")
    check("-h: exit 0", rc == 0 and "usage" in out.lower(), (rc, out))
    rc, out, err = run_cli("--version")
    check("--version: exit 0, 'deconvd <version>'", rc == 0 and out.startswith("deconvd ")
          and len(out.split()) >= 2, (rc, out, err))
    bad = [
        (["--bogus"], "--bogus"), (["--workers", "abc"], "workers"),
        (["--workers", "-1"], "workers"), (["--workers"], "workers"),
        (["--threads-per-request", "x"], "threads"), (["--log-level", "loud"], "log-level"),
        (["--listen", "nonsense"], "listen"), (["--listen", "127.0.0.1:99999"], "port"),
        (["stray-argument"], "stray-argument"),
    ]
    for args, word in bad:
        rc, out, err = run_cli("--config", SHIPPED_CONFIG, *args)
        check("usage error %s: exit 2 with a message naming %r" % (" ".join(args), word),
              rc == 2 and word in err and "deconvd" in err, (rc, out, err))
    rc, out, err = run_cli("--config", SHIPPED_CONFIG, "--check")
    lines = out.splitlines()
    ok = rc == 0 and all(any(ln.startswith(m + " ") for ln in lines)
                         for m in ("up1d", "up2d", "gen3d"))
    check("--check on the shipped config: exit 0, one line per model", ok, (rc, out, err))
    up1d = [ln for ln in lines if ln.startswith("up1d ")]
    check("--check prints the signature (up1d [-1, -1, 2] -> [-1, -1, 1])",
          up1d and "[-1, -1, 2]" in up1d[0] and "[-1, -1, 1]" in up1d[0]
          and "Conv1DTranspose" in up1d[0], up1d)
    check("--check does not start listening", "listening" not in err, err)

    mdir = os.path.join(tmp, "models")
    os.mkdir(mdir)
    T.copy_shipped_models(mdir, ["up1d"])
    with open(os.path.join(mdir, "bad.json"), "w") as f:
        json.dump({"class_name": "Conv2DTranspose", "config": {"filters": 2, "kernel_size": 3,
                                                               "padding": "causal"}}, f)

    def cfg(d, name="c.json"):
        p = os.path.join(tmp, name)
        with open(p, "w") as f:
            f.write(d if isinstance(d, str) else json.dumps(d))
        return p

    good_cfg = cfg({"models_dir": "models"}, "good.json")
    rc, out, err = run_cli("--config", good_cfg, "--check")
    check("--check with a broken model: exit 1, FAILED line naming it",
          rc == 1 and any(ln.startswith("bad ") and "FAILED" in ln and "causal" in ln
                          for ln in out.splitlines())
          and any(ln.startswith("up1d ") for ln in out.splitlines()), (rc, out, err))
    os.mkdir(os.path.join(tmp, "other"))
    T.copy_shipped_models(os.path.join(tmp, "other"), ["up2d"])
    rc, out, err = run_cli("--config", good_cfg, "--models", os.path.join(tmp, "other"),
                           "--check")
    check("--models overrides models_dir for --check", rc == 0 and "up2d" in out
          and "up1d" not in out, (rc, out, err))
    cfgs = [
        ("unknown key", {"models_dir": "models", "colour": "blue"}, "colour"),
        ("invalid JSON", '{"models_dir": "models",', "config"),
        ("not an object", "[1, 2]", "object"),
        ("workers not an integer", {"workers": "two"}, "workers"),
        ("workers out of range", {"workers": 5000}, "workers"),
        ("max_body_bytes below minimum", {"max_body_bytes": 5}, "max_body_bytes"),
        ("bad log_format", {"log_format": "xml"}, "log_format"),
        ("bad log_level", {"log_level": "chatty"}, "log_level"),
        ("bad listen", {"listen": "localhost"}, "listen"),
        ("auth_token not a string", {"auth_token": 5}, "auth_token"),
    ]
    for what, doc, word in cfgs:
        p = cfg(doc)
        rc, out, err = run_cli("--config", p, "--check")
        check("config %s: exit 2 naming %r" % (what, word), rc == 2 and word in err,
              (rc, out, err))
    rc, out, err = run_cli("--config", os.path.join(tmp, "missing.json"))
    check("missing config file: exit 2 naming the file", rc == 2 and "missing.json" in err,
          (rc, out, err))


# ------------------------------------------------------------ heavy model

HEAVY_CIN = HEAVY_COUT = 128
HEAVY_K = 15            # 15x15x128x128: ~150 GFLOPS single-threaded oneDNN


def heavy_request(x, binary_output=True):
    raw = np.asarray(x, dtype="<f4").tobytes()
    return T.binary_request(raw, x.shape, binary_output=binary_output)


def heavy_post(d, x, timeout=60):
    body, h = heavy_request(x)
    return d.post("/v2/models/heavy/infer", data=body, headers=h, timeout=timeout)


def calibrate(d, target=0.6, cap=160):
    """Side of a square input for which one heavy request takes ~target s
    (cap keeps the binary body at a few MB). In slow mode target scales and
    the search starts small: under valgrind one side-48 request takes minutes."""
    target = T.t(target)
    side, low = (8, 4) if T.SLOW_MODE else (48, 16)
    for _ in range(5):
        x = np.zeros((1, side, side, HEAVY_CIN), dtype=np.float32)
        heavy_post(d, x)                          # warm the plan cache for this size
        t0 = time.monotonic()
        r = heavy_post(d, x)
        dt = time.monotonic() - t0
        if r.status_code != 200:
            raise RuntimeError("heavy calibration request failed: %s %s"
                               % (r.status_code, r.text[:300]))
        if 0.75 * target <= dt <= 2 * target or side >= cap:
            break
        side = int(min(cap, max(low, side * (target / max(dt, 1e-3)) ** 0.5)))
    print("# heavy model: side %d takes %.2fs" % (side, dt), flush=True)
    return side, dt


def wait_inflight(d, n=1, timeout=10):
    def f():
        try:
            t = d.get("/metrics", timeout=5).text
        except requests.RequestException:
            return False
        for ln in t.splitlines():
            if ln.startswith("deconvd_inflight_requests "):
                return float(ln.split()[1]) >= n
        return False
    return T.wait_until(f, timeout, 0.02)


# ----------------------------------------------------- overload, drain, etc

def test_overload_disconnect_drain():
    rng = np.random.default_rng(5)
    doc, npy, k, b = T.heavy_model(rng, c=HEAVY_CIN, k=HEAVY_K, scale=0.01)
    with T.Daemon(config={"workers": 1, "threads_per_request": 1, "max_queue": 1,
                          "request_timeout_ms": 60000},
                  models={"heavy": doc}, npy=npy, shipped=["up1d"],
                  name="overload daemon") as d:
        d.start()
        if not T.answers_inference(d, "up1d", RNG.standard_normal((1, 3, 2))):
            return
        side, dt = calibrate(d)
        x = rng.standard_normal((1, side, side, HEAVY_CIN)).astype(np.float32)
        r = heavy_post(d, x)
        base = T.heavy_output(r) if r.status_code == 200 else None
        ok, why = T.heavy_check(base, x, k, b, rng) if base is not None else (False, r.text)
        check("heavy model (%dx%d, k%d, %d->%d ch) matches the exact sum at sampled pixels"
              % (side, side, HEAVY_K, HEAVY_CIN, HEAVY_COUT), ok, why)

        # --- overload: 8 concurrent heavy requests on 1 worker + 1 queue slot
        n = 8
        ths = [T.Bg(heavy_post, d, x, 120) for _ in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(T.t(120))
        codes = [getattr(t.result, "status_code", repr(t.result)) for t in ths]
        busy = [t.result for t in ths if getattr(t.result, "status_code", 0) == 503]
        good = [t.result for t in ths if getattr(t.result, "status_code", 0) == 200]
        check("overload: every request answered 200 or 503", len(busy) + len(good) == n, codes)
        check("overload: some requests refused with 503", len(busy) >= 1, codes)
        check("overload: at least one request served", len(good) >= 1, codes)
        check("overload: every 503 has Retry-After and a JSON error",
              all(r.headers.get("Retry-After") and "error" in r.json() for r in busy),
              [dict(r.headers) for r in busy])
        bad = []
        for r in good:
            ok, why = close(T.heavy_output(r), base, rtol=1e-5, atol=1e-5)
            if not ok:
                bad.append(why)
        check("overload: every 200 is correct (same as the uncontended answer)",
              not bad and good, bad)
        r = heavy_post(d, x)
        check("overload: served again once the storm is over", r.status_code == 200,
              r.status_code)
        t = d.get("/metrics").text
        check("overload: metrics count the 503s",
              'deconvd_requests_total{model="heavy",endpoint="infer",code="503"}' in t,
              [ln for ln in t.splitlines() if "requests_total" in ln])

        # --- disconnects
        x1 = RNG.standard_normal((1, 4, 2)).astype(np.float32)
        body = json.dumps(T.infer_body(x1)).encode()
        hdr = ("POST /v2/models/up1d/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Length: %d\r\n\r\n" % len(body)).encode()
        T.raw_http(d.port, hdr + body[:len(body) // 2], read=False)
        T.raw_http(d.port, b"POST /v2/models/up1d/in", read=False)
        T.raw_http(d.port, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n", read=False)
        hb, hh = heavy_request(x)
        hdr = ("POST /v2/models/heavy/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Inference-Header-Content-Length: %s\r\nContent-Length: %d\r\n\r\n"
               % (hh["Inference-Header-Content-Length"], len(hb))).encode()
        T.raw_http(d.port, hdr + hb, read=False)            # closes before the answer
        s = socket.create_connection(("127.0.0.1", d.port), timeout=T.t(5))
        s.sendall(hdr + hb)
        s.shutdown(socket.SHUT_WR)                          # half-close, then vanish
        time.sleep(0.05)
        s.close()
        r = d.get("/v2/health/live", timeout=5)
        check("disconnects: live while abandoned jobs run", r.status_code == 200, r.status_code)
        drained = T.wait_until(lambda: not wait_inflight(d, 1, 0.01), 30, 0.1)
        check("disconnects: abandoned jobs finish (inflight back to 0)", drained, "")
        r = d.post("/v2/models/up1d/infer", T.infer_body(x1))
        k1 = np.load(os.path.join(T.SHIPPED_MODELS, "up1d.kernel.npy"))
        b1 = np.load(os.path.join(T.SHIPPED_MODELS, "up1d.bias.npy"))
        ok, why = (close(T.output_array(r.json()), T.keras_ref(x1, k1, b1, [2], "same"))
                   if r.status_code == 200 else (False, r.text))
        check("disconnects: daemon still serves correct answers", ok and d.alive(), why)
        r = heavy_post(d, x)
        check("disconnects: heavy model still serves", r.status_code == 200, r.status_code)
        log = d.log()
        check("disconnects: access log records the aborted requests",
              "outcome=client_abort" in log or "outcome=closed" in log, "")

        # --- port already in use
        with tempfile.TemporaryFile() as errf:
            cmd, vglog = T.wrapped("second daemon on a busy port")
            p = subprocess.Popen(cmd + ["--config", d.config_path, "--listen",
                                        "127.0.0.1:%d" % d.port], stdout=errf, stderr=errf,
                                 stdin=subprocess.DEVNULL)
            def seen():
                errf.seek(0)
                return errf.read().decode("utf-8", "replace")
            T.wait_until(lambda: p.poll() is not None or "msg=listening" in seen(), 10)
            rc = p.poll()
            if rc is None:
                p.kill()
                p.wait(5)
                rc = "still running (it listens on the same port)"
            msg = seen()
        check("a second daemon on a busy port exits 1 with 'cannot listen'",
              rc == 1 and "cannot listen" in msg, (rc, msg[-600:]))
        T.check_valgrind("second daemon on a busy port", vglog)

        # --- SIGHUP while a request runs on the model being swapped
        t = T.Bg(heavy_post, d, x, 60)
        t.start()
        check("reload in flight: heavy request running", wait_inflight(d, 1, 10), "")
        d.write_model("heavy", doc)                # same content: still a new version
        d.signal(signal.SIGHUP)
        t.join(T.t(60))
        r = t.result
        ok = getattr(r, "status_code", 0) == 200
        head = T.parse_binary_response(r)[0] if ok else {}
        check("reload in flight: the running request completes on version 1",
              ok and head.get("model_version") == "1"
              and close(T.heavy_output(r), base, rtol=1e-5, atol=1e-5)[0], repr(r))

        def heavy_version():
            rr = d.post("/v2/repository/index", timeout=5)
            return {e["name"]: e for e in rr.json()}.get("heavy", {}).get("version")
        ok = T.wait_until(lambda: heavy_version() == "2", 20)
        check("reload in flight: heavy swapped to version 2 afterwards", ok, heavy_version())
        r = heavy_post(d, x)
        ok = r.status_code == 200
        check("reload in flight: version 2 answers the same values",
              ok and T.parse_binary_response(r)[0].get("model_version") == "2"
              and close(T.heavy_output(r), base, rtol=1e-5, atol=1e-5)[0], r.status_code)

        # --- SIGTERM drain with a request in flight
        t = T.Bg(heavy_post, d, x, 60)
        t.start()
        inflight = wait_inflight(d, 1, 10)
        check("drain: heavy request in flight before SIGTERM", inflight, "")
        d.signal(signal.SIGTERM)
        time.sleep(T.t(0.15))
        try:
            rr = requests.get(d.url("/v2/health/ready"), timeout=2)
            refused = rr.status_code == 503
        except requests.RequestException:
            refused = True
        check("drain: no longer ready/accepting after SIGTERM", refused, "")
        t.join(T.t(60))
        r = t.result
        ok, why = ((close(T.heavy_output(r), base, rtol=1e-5, atol=1e-5))
                   if getattr(r, "status_code", 0) == 200 else (False, repr(r)))
        check("drain: the in-flight request completes 200 and correct", ok, why)
        try:
            rc = d.proc.wait(T.t(20))
        except subprocess.TimeoutExpired:
            rc = None
        check("drain: exit code 0", rc == 0, rc)
        log = d.log()
        check("drain: logs msg=draining and msg=drained",
              "msg=draining" in log and "msg=drained" in log, log[-1500:])
        check("drain: nothing abandoned", "abandoned=0" in log, log[-800:])


def one_worker_busy(config, name, what, seed):
    """A daemon with one worker, busy on a ~1 s heavy request: yields
    (daemon, background thread of that request), or (None, None) after a
    skip when the machine computes the heavy request too fast."""
    rng = np.random.default_rng(seed)
    doc, npy, k, b = T.heavy_model(rng, c=HEAVY_CIN, k=HEAVY_K, scale=0.01)
    cfg = {"workers": 1, "threads_per_request": 1, "max_queue": 4}
    cfg.update(config)
    with T.Daemon(config=cfg, models={"heavy": doc}, npy=npy, shipped=["up1d"],
                  name=name) as d:
        d.start()
        if not T.answers_inference(d, "up1d", RNG.standard_normal((1, 3, 2))):
            yield None, None
            return
        side, dt = calibrate(d, target=1.0)
        if dt < T.t(0.4):        # a request behind it must wait well over 250 ms
            T.R.skip(what, "heavy request only takes %.2fs" % dt)
            yield None, None
            return
        x = rng.standard_normal((1, side, side, HEAVY_CIN)).astype(np.float32)
        t = T.Bg(heavy_post, d, x, 60)
        t.start()
        # under valgrind the loop answers no /metrics while the worker
        # computes, and the request is done by the time it does: a race
        if not T.skip_under_valgrind("%s: heavy request in flight" % what, T.LOOP_STARVED):
            check("%s: heavy request in flight" % what, wait_inflight(d, 1, 10), "")
        yield d, t


def test_timeout():
    # inline_max_work 0: even up1d queues behind the heavy request
    for d, t in one_worker_busy({"request_timeout_ms": 250, "inline_max_work": 0},
                                "timeout daemon", "timeout", 6):
        if not d:
            return
        x1 = RNG.standard_normal((1, 4, 2)).astype(np.float32)
        queued = not T.skip_under_valgrind("timeout: a request queued longer than "
                                           "request_timeout_ms gets 504 (counted in stats)",
                                           T.LOOP_STARVED)
        if queued:
            r = d.post("/v2/models/up1d/infer", T.infer_body(x1), timeout=60)
            err = r.json().get("error", "") if r.status_code != 200 else ""
            check("timeout: a request queued longer than request_timeout_ms gets 504",
                  r.status_code == 504 and "request_timeout_ms" in err, (r.status_code, r.text))
        t.join(T.t(60))
        check("timeout: the running request still completes 200",
              getattr(t.result, "status_code", None) == 200, repr(t.result))
        r = d.post("/v2/models/up1d/infer", T.infer_body(x1))
        check("timeout: an unqueued request is served", r.status_code == 200, r.text)
        r = d.get("/v2/models/up1d/stats")
        try:
            fails = r.json()["model_stats"][0]["inference_stats"]["fail"]["count"]
        except (KeyError, IndexError, ValueError):
            fails = None
        if queued:
            check("timeout: the 504 counted as a failure in stats", fails == 1, r.text)


# ----------------------------------------------------------------- SIGHUP

def test_inline_small_requests():
    """With one worker busy on a heavy request, a tiny inference is computed
    on the loop thread (inline_max_work) instead of queueing behind it."""
    for d, t in one_worker_busy({}, "inline daemon", "inline", 7):
        if not d:
            return
        x1 = np.array([[[1, 2], [3, 4]]], dtype=np.float32)
        r = d.post("/v2/models/up1d/infer", T.infer_body(x1), timeout=60)
        busy = t.is_alive()
        got = T.output_array(r.json()) if r.status_code == 200 else None
        if not T.skip_under_valgrind("inline: tiny request answered while the only worker "
                                     "is busy", T.LOOP_STARVED):
            check("inline: tiny request answered while the only worker is busy",
                  r.status_code == 200 and busy, (r.status_code, busy))
        # the README's example: [[1,2],[3,4]] -> [2.5, 0.5, 5.75, 2.5]
        check("inline: and its values are right",
              got is not None and np.allclose(np.ravel(got), [2.5, 0.5, 5.75, 2.5], atol=1e-6),
              got)
        t.join(T.t(60))
        check("inline: the heavy request completes 200",
              getattr(t.result, "status_code", None) == 200, repr(t.result))


def test_sighup():
    rng = np.random.default_rng(7)
    k1, b1 = rng.standard_normal((3, 2, 3)).astype("<f4"), rng.standard_normal(2).astype("<f4")
    k2, b2 = rng.standard_normal((3, 2, 3)).astype("<f4"), rng.standard_normal(2).astype("<f4")
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    with T.Daemon(models={"a": T.conv1d_doc("a", "a1.k.npy", "a1.b.npy"),
                          "b": T.conv1d_doc("b", "a1.k.npy", "a1.b.npy", "relu")},
                  npy={"a1.k.npy": k1, "a1.b.npy": b1}, name="reload daemon") as d:
        d.start()
        if not T.answers_inference(d, "a", x):
            return

        def index():
            r = d.post("/v2/repository/index", timeout=5)
            return {e["name"]: e for e in r.json()} if r.status_code == 200 else {}

        def infer(name):
            return d.post("/v2/models/%s/infer" % name, T.infer_body(x), timeout=30)

        def matches(r, k, b, what):
            ok, why = (close(T.output_array(r.json()), T.keras_ref(x, k, b, [2], "same"))
                       if r.status_code == 200 else (False, r.text))
            check(what, ok, why)

        r = infer("a")
        matches(r, k1, b1, "reload: a serves the first weights")
        check("reload: a starts at version 1", r.json().get("model_version") == "1", r.text)

        # 0. nothing changed: a reload keeps the version (no churn)
        d.signal(signal.SIGHUP)
        ok = T.wait_until(lambda: d.log().count("msg=ready") >= 2, 15)
        check("reload: SIGHUP with untouched files completes", ok, d.log()[-500:])
        check("reload: untouched model keeps version 1",
              index().get("a", {}).get("version") == "1", index().get("a"))
        r = infer("a")
        check("reload: untouched model still answers as version 1",
              r.status_code == 200 and r.json().get("model_version") == "1", r.text[:200])

        # 1. changed weights swap in, version increments
        T.write_npy(os.path.join(d.models_dir, "a2.k.npy"), k2)
        T.write_npy(os.path.join(d.models_dir, "a2.b.npy"), b2)
        d.write_model("a", T.conv1d_doc("a", "a2.k.npy", "a2.b.npy"))
        d.signal(signal.SIGHUP)
        ok = T.wait_until(lambda: index().get("a", {}).get("version") == "2", 15)
        check("reload: SIGHUP swaps in the changed model as version 2", ok, index())
        r = infer("a")
        matches(r, k2, b2, "reload: a serves the new weights")
        check("reload: infer reports model_version 2", r.json().get("model_version") == "2",
              r.text)
        r = d.get("/v2/models/a")
        check("reload: metadata versions ['2']", r.json().get("versions") == ["2"], r.text)
        check("reload: log has 'reload requested'", "reload requested" in d.log(), "")
        check("reload: still ready after the reload",
              d.get("/v2/health/ready").status_code == 200, "")

        # 2. a broken file keeps the previous version serving
        for what, content in (("invalid JSON", '{"class_name": "Conv1DTranspose", "con'),
                              ("kernel of the wrong shape",
                               T.conv1d_doc("a", "a1.b.npy", "a2.b.npy"))):
            v = index().get("a", {}).get("version")
            d.write_model("a", content)
            d.signal(signal.SIGHUP)
            ok = T.wait_until(lambda: index().get("a", {}).get("reason"), 15)
            e = index().get("a", {})
            check("reload (%s): index keeps a READY at version %s with the error as reason"
                  % (what, v), ok and e.get("state") == "READY" and e.get("version") == v, e)
            r = infer("a")
            matches(r, k2, b2, "reload (%s): a still serves the previous version" % what)
            check("reload (%s): infer reports the previous version" % what,
                  r.status_code == 200 and r.json().get("model_version") == v, r.text[:200])
            check("reload (%s): model ready 200" % what,
                  d.get("/v2/models/a/ready").status_code == 200, "")
            d.write_model("a", T.conv1d_doc("a", "a2.k.npy", "a2.b.npy"))
            d.signal(signal.SIGHUP)
            ok = T.wait_until(lambda: index().get("a", {}).get("reason") == "", 15)
            check("reload (%s): fixing the file clears the reason" % what, ok, index().get("a"))
        v = index().get("a", {}).get("version")
        r = infer("a")
        check("reload: version after the fixes matches infer",
              r.status_code == 200 and r.json().get("model_version") == v, (v, r.text))

        # 3. a new file appears
        d.write_model("c", T.conv1d_doc("c", "a2.k.npy", "a2.b.npy", "tanh"))
        d.signal(signal.SIGHUP)
        ok = T.wait_until(lambda: index().get("c", {}).get("state") == "READY", 15)
        check("reload: a new model file appears READY", ok, index())
        r = infer("c")
        ok2, why = (close(T.output_array(r.json()),
                          T.keras_ref(x, k2, b2, [2], "same", activation="tanh"))
                    if r.status_code == 200 else (False, r.text))
        check("reload: the new model serves correct values", ok2, why)

        # 4. a removed file goes away
        T.wait_until(lambda: "reload requested" in d.log(), 1)
        d.remove_model("b")
        d.signal(signal.SIGHUP)
        ok = T.wait_until(lambda: "b" not in index(), 15)
        check("reload: a removed model file leaves the index", ok, sorted(index()))
        r = d.get("/v2/models/b")
        check("reload: removed model metadata 404", r.status_code == 404, r.text)
        r = infer("b")
        check("reload: removed model infer 404", r.status_code == 404, r.text)
        r = d.get("/v2/models/stats")
        names = [s["name"] for s in r.json().get("model_stats", [])]
        check("reload: removed model leaves the stats", "b" not in names and "a" in names, names)
        t = d.get("/metrics").text
        check("reload: models_loaded gauge = 2", "deconvd_models_loaded 2" in t,
              [ln for ln in t.splitlines() if "models_loaded" in ln])
        check("reload: daemon alive after four reloads", d.alive(), d.log()[-1500:])


def test_json_log():
    with T.Daemon(config={"log_format": "json"}, shipped=["up1d"], name="json-log daemon") as d:
        d.start()
        d.get("/v2/models/up1d")
        d.get("/nope")
        rc = d.stop()
        check("json log: exit 0", rc == 0, rc)
        bad = []
        n = 0
        for ln in d.log().splitlines():
            n += 1
            try:
                o = json.loads(ln)
                if not all(k in o for k in ("ts", "level", "msg")):
                    bad.append(ln)
            except ValueError:
                bad.append(ln)
        check("json log: every stderr line is a JSON object with ts/level/msg",
              n > 3 and not bad, bad[:5])


def _environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv)


def test_openmp_wait_policy():
    """The daemon runs with OMP_WAIT_POLICY=PASSIVE unless told otherwise
    (it re-executes itself once: libgomp reads the variable before main)."""
    saved = os.environ.pop("OMP_WAIT_POLICY", None)
    try:
        for given, want in ((None, b"PASSIVE"), ("ACTIVE", b"ACTIVE")):
            if given:
                os.environ["OMP_WAIT_POLICY"] = given
            with T.Daemon(shipped=["up1d"], name="omp-%s daemon" % (given or "unset")) as d:
                d.start()
                env = _environ(d.proc.pid)
                check("OMP_WAIT_POLICY %s in the environment: the daemon runs with %s"
                      % (given or "not set", want.decode()),
                      env.get(b"OMP_WAIT_POLICY") == want, env.get(b"OMP_WAIT_POLICY"))
                r = d.get("/v2/models/up1d")
                check("  and serves (%s)" % (given or "unset"), r.status_code == 200, r.status_code)
                check("  exits 0", d.stop() == 0)
            os.environ.pop("OMP_WAIT_POLICY", None)
    finally:
        if saved is not None:
            os.environ["OMP_WAIT_POLICY"] = saved


def test_access_log_prompt():
    """Access lines are batched per loop iteration, never held while idle."""
    with T.Daemon(shipped=["up1d"], name="access-log daemon") as d:
        d.start()
        for i in range(3):
            d.get("/v2/models/absent%d" % i)       # a distinct path per request
            deadline = time.monotonic() + T.t(2.0)
            seen = False
            while not seen and time.monotonic() < deadline:
                seen = "path=/v2/models/absent%d " % i in d.log()
                if not seen:
                    time.sleep(0.01)
            check("idle daemon: access line %d written without further traffic" % i, seen,
                  d.log()[-400:])
        check("access-log daemon exits 0", d.stop() == 0)


def main():
    T.R.run(test_cli)
    T.R.run(test_openmp_wait_policy)
    T.R.run(test_access_log_prompt)
    T.R.run(test_sighup)
    T.R.run(test_json_log)
    T.R.run(test_overload_disconnect_drain)
    T.R.run(test_timeout)
    T.R.run(test_inline_small_requests)


if __name__ == "__main__":
    T.main_guard(main)
