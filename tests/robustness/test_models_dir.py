#!/usr/bin/python3
"""The models directory, against the daemon (issue 11):

- reload stall: SIGHUP reloads of thousands of models (MODELS_N, 6000 by
  default: all unchanged; half of them removed; as many added at once)
  while a separate client probes /v2/health/live at a fixed rate, never
  waiting for an answer before the next probe (so a stalled loop shows in
  every probe it delays): p99 below 50 ms, figures printed (release build);
- non-regular files named like models (a FIFO, a socket, a directory,
  symlinks to /dev/zero and /dev/urandom): the reload completes, each is a
  load error naming the file, the other models serve, a later repository
  load works and SIGTERM completes;
- versions stay monotonic per name across unload/load and removal/return;
- strict readiness: every model failing → 503 naming them; fixed files and
  a SIGHUP → ready; a failed model unloaded on purpose does not count;
  strict_readiness false → ready as before; under the kernel's
  MemoryDenyWriteExecute (PR_SET_MDWE, what systemd's setting enforces)
  every model fails and readiness says so.
"""
import ctypes
import json
import os
import selectors
import signal
import socket
import threading
import time

import requests

import rlib as L

T = L.T
check = L.check

MODELS_N = int(os.environ.get("MODELS_N", "6000"))
HEALTH_P99_MS = 50.0
PROBE_INTERVAL = 0.01

TINY = {"class_name": "Conv1DTranspose",
        "config": {"filters": 1, "kernel_size": [3], "strides": [2], "padding": "same",
                   "batch_input_shape": [None, None, 2]}}
TINY_TEXT = json.dumps(TINY)


def reloads_done(d):
    """How many full reloads (start-up included) the daemon has finished."""
    with open(d.stderr_path, "rb") as f:
        return f.read().count(READY_LINE)


READY_LINE = b" msg=ready "


class LogCounter:
    """reloads_done, reading only what the log gained since the last call
    (a reload of thousands of models writes a line for each). The carry is
    one byte shorter than the pattern, so no match is counted twice."""

    def __init__(self, d):
        self.path, self.off, self.count, self.carry = d.stderr_path, 0, 0, b""

    def __call__(self):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read()
        self.off += len(data)
        buf = self.carry + data
        self.count += buf.count(READY_LINE)
        self.carry = buf[-(len(READY_LINE) - 1):]
        return self.count


def wait_reloads(d, n, timeout, counter=None):
    counter = counter or (lambda: reloads_done(d))
    return T.wait_until(lambda: counter() >= n, timeout, 0.02)


class Prober(threading.Thread):
    """GET /v2/health/live every PROBE_INTERVAL, each on a fresh connection,
    without waiting for earlier answers (non-blocking sockets): a stalled
    loop delays every probe sent meanwhile, while a prober slowed by a busy
    machine sends late but does not count its own lateness."""

    REQ = L.http_req("GET", "/v2/health/live")

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.samples = port, threading.Event(), []

    def send(self, sel):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        sel.register(s, selectors.EVENT_WRITE, {"t": time.monotonic(), "buf": b""})

    def step(self, sel, key, events):
        s, st = key.fileobj, key.data
        done = None
        try:
            if events & selectors.EVENT_WRITE:
                s.send(self.REQ)                    # tiny: goes out whole
                sel.modify(s, selectors.EVENT_READ, st)
                return
            c = s.recv(65536)
            st["buf"] += c
            rs = L.parse_responses(st["buf"])
            if rs or not c:
                done = bool(rs) and rs[0][0] == 200
        except OSError:
            done = False
        if done is not None:
            self.samples.append((st["t"], time.monotonic() - st["t"], done))
            sel.unregister(s)
            s.close()

    def run(self):
        sel = selectors.DefaultSelector()
        due = time.monotonic()
        while not self.stop.is_set() or (sel.get_map() and time.monotonic() < self.end):
            now = time.monotonic()
            while not self.stop.is_set() and now >= due:
                self.send(sel)
                due += PROBE_INTERVAL
            for key, events in sel.select(max(0.0, min(due - now, 0.05))):
                self.step(sel, key, events)
            for key in list(sel.get_map().values()):   # 60 s without an answer: failed
                if time.monotonic() - key.data["t"] > 60:
                    self.samples.append((key.data["t"], 60.0, False))
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
        sel.close()

    def finish(self):
        self.end = time.monotonic() + 65
        self.stop.set()
        self.join(70)

    def window(self, t0, t1):
        return [(lat, ok) for sent, lat, ok in self.samples if t0 <= sent <= t1]


def ready_models(d):
    r = d.post("/v2/repository/index", timeout=60)
    return sum(1 for m in r.json() if m.get("state") == "READY")


def write_tiny(models_dir, names):
    for n in names:
        with open(os.path.join(models_dir, n + ".json"), "w") as f:
            f.write(TINY_TEXT)


def timed_reload(d, prober, counter, what, want_ready):
    n = counter()
    t0 = time.monotonic()
    d.signal(signal.SIGHUP)
    done = wait_reloads(d, n + 1, 300, counter)
    dt = time.monotonic() - t0
    time.sleep(0.3)
    lats = prober.window(t0, time.monotonic())
    ms = [1000 * lat for lat, _ in lats]
    p99, mx = L.percentile(ms, 99), max(ms) if ms else float("nan")
    L.figure("reload, %s: duration (s)" % what, "%.2f" % dt)
    L.figure("reload, %s: /v2/health/live p99 / max (ms)" % what, "%.1f / %.1f" % (p99, mx))
    got = ready_models(d)
    check("reload, %s: completes in %.2fs with %d models ready, and /v2/health/live p99 "
          "%.1f ms < %.0f ms during it (max %.1f ms, %d probes, all 200)"
          % (what, dt, want_ready, p99, HEALTH_P99_MS, mx, len(ms)),
          done and got == want_ready and ms and p99 < HEALTH_P99_MS and
          all(ok for _, ok in lats), (done, got, p99, mx, len(ms), d.tail(3)))


def test_reload_stall():
    L.use_binary(L.release_binary())
    n, half = MODELS_N, MODELS_N // 2
    names = ["m%05d" % i for i in range(n)]
    with L.RDaemon(config={"workers": 2}, name="reload stall daemon") as d:
        write_tiny(d.models_dir, names)
        t0 = time.monotonic()
        d.start(timeout=300)
        L.figure("start-up with %d models: ready after (s)" % n, "%.2f" % (time.monotonic() - t0))
        counter = LogCounter(d)
        prober = Prober(d.port)
        prober.start()
        try:
            time.sleep(0.3)
            timed_reload(d, prober, counter, "%d models unchanged" % n, n)
            for name in names[:half]:
                os.unlink(os.path.join(d.models_dir, name + ".json"))
            timed_reload(d, prober, counter, "%d models, %d removed" % (n, half), n - half)
            write_tiny(d.models_dir, ["a%05d" % i for i in range(n)])
            timed_reload(d, prober, counter, "%d models added at once" % n, n - half + n)
        finally:
            prober.finish()


# ----------------------------------------------------------- non-regular files

PLANTED = {"fifo": "a FIFO", "sock": "a socket", "dir": "a directory",
           "zero": "a character device", "urand": "a character device"}


def plant(models_dir):
    os.mkfifo(os.path.join(models_dir, "fifo.json"))
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(os.path.join(models_dir, "sock.json"))
    s.close()
    os.mkdir(os.path.join(models_dir, "dir.json"))
    os.symlink("/dev/zero", os.path.join(models_dir, "zero.json"))
    os.symlink("/dev/urandom", os.path.join(models_dir, "urand.json"))


def test_non_regular_files():
    L.use_binary(L.asan_binary())
    with L.RDaemon(shipped=["up1d"], name="non-regular files daemon") as d:
        d.start()
        plant(d.models_dir)
        d.signal(signal.SIGHUP)
        done = wait_reloads(d, 2, 15)
        check("non-regular files: a SIGHUP reload with a FIFO, a socket, a directory and "
              "symlinks to /dev/zero and /dev/urandom named *.json completes", done, d.tail())
        idx = {m["name"]: m for m in d.post("/v2/repository/index").json()}
        for name, kind in sorted(PLANTED.items()):
            m = idx.get(name, {})
            reason = m.get("reason", "")
            check("non-regular files: %s.json is a load error naming the file and that it is %s"
                  % (name, kind), m.get("state") == "UNAVAILABLE" and
                  ("%s.json is %s, not a regular file" % (name, kind)) in reason, m)
        x = [[[1.0, 2.0]]]
        r1 = d.post("/v2/models/up1d/infer", {"inputs": [{"name": "input", "shape": [1, 1, 2],
                                                          "datatype": "FP32", "data": x}]})
        r = d.post("/v2/repository/models/up1d/load", {})
        check("non-regular files: the other model serves, and a repository load afterwards "
              "works (200)", r1.status_code == 200 and r.status_code == 200,
              "%s %s / %s %s" % (r1.status_code, r1.text, r.status_code, r.text))
        t0 = time.monotonic()
        rc = d.stop(10)                            # SIGTERM; None when it had to be killed
        check("non-regular files: SIGTERM completes (exit %r in %.1fs)"
              % (rc, time.monotonic() - t0), rc == 0, d.tail())


# ------------------------------------------------------------------ versions

def index_version(d, name):
    for m in d.post("/v2/repository/index").json():
        if m["name"] == name:
            return m.get("version"), m.get("state")
    return None, None


def test_versions():
    L.use_binary(L.asan_binary())
    with L.RDaemon(shipped=["up1d"], name="versions daemon") as d:
        d.start()
        src = os.path.join(d.models_dir, "up1d.json")
        with open(src) as f:
            text = f.read()
        seen = [index_version(d, "up1d")]
        d.post("/v2/repository/models/up1d/unload", {})
        d.post("/v2/repository/models/up1d/load", {})
        seen.append(index_version(d, "up1d"))
        os.unlink(src)
        d.signal(signal.SIGHUP)
        wait_reloads(d, 2, 15)
        gone = index_version(d, "up1d") == (None, None)
        with open(src, "w") as f:
            f.write(text)
        d.signal(signal.SIGHUP)
        wait_reloads(d, 3, 15)
        v = index_version(d, "up1d")
        r = d.post("/v2/models/up1d/infer", {"inputs": [{"name": "input", "shape": [1, 1, 2],
                                                         "datatype": "FP32", "data": [1, 2]}]})
        mv = r.json().get("model_version") if r.status_code == 200 else r.text
        d.post("/v2/repository/models/up1d/unload", {})
        d.post("/v2/repository/models/up1d/load", {})
        seen += [v, index_version(d, "up1d")]
        check("versions: 1, unload/load 2, removed and back 3 (not 1 again; inference "
              "model_version %r), unload/load 4: got %r" % (mv, [x[0] for x in seen]),
              gone and mv == "3" and seen == [(str(i), "READY") for i in (1, 2, 3, 4)],
              (gone, mv, seen))


# ---------------------------------------------------------------- readiness

def ready(d):
    r = d.get("/v2/health/ready", timeout=10)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


def failed_names(body):
    if not isinstance(body, dict):
        return None
    return sorted(m.get("name") for m in body.get("failed_models", []))


def test_strict_readiness():
    L.use_binary(L.asan_binary())
    good = open(os.path.join(T.SHIPPED_MODELS, "up1d.json")).read()
    npy = {"up1d.kernel.npy": T.np.load(os.path.join(T.SHIPPED_MODELS, "up1d.kernel.npy")),
           "up1d.bias.npy": T.np.load(os.path.join(T.SHIPPED_MODELS, "up1d.bias.npy"))}
    broken = {"b1": "{\"class_name\": ", "b2": json.dumps({"class_name": "Conv2D"})}
    with L.RDaemon(models=broken, npy=npy, name="strict readiness daemon") as d:
        d.start(ready=False)
        wait_reloads(d, 1, 15)
        st, body = ready(d)
        errs = {m.get("name"): m.get("error", "") for m in body.get("failed_models", [])} \
            if isinstance(body, dict) else {}
        check("strict readiness: every model failed → 503 naming each with its error",
              st == 503 and body.get("ready") is False and failed_names(body) == ["b1", "b2"]
              and "b1.json" in errs.get("b1", "") and "b2.json" in errs.get("b2", ""),
              (st, body))
        d.write_model("b1", good)
        d.signal(signal.SIGHUP)
        wait_reloads(d, 2, 15)
        st1, body1 = ready(d)
        d.write_model("b2", good)
        d.signal(signal.SIGHUP)
        wait_reloads(d, 3, 15)
        st2, body2 = ready(d)
        check("strict readiness: one fixed + SIGHUP → still 503, naming only the other; both "
              "fixed + SIGHUP → 200 {\"ready\": true}",
              st1 == 503 and failed_names(body1) == ["b2"] and st2 == 200 and
              body2 == {"ready": True}, (st1, body1, st2, body2))
        d.write_model("b3", "[")
        d.signal(signal.SIGHUP)
        wait_reloads(d, 4, 15)
        st1, body1 = ready(d)
        r = d.post("/v2/repository/models/b3/unload", {})
        st2, body2 = ready(d)
        check("strict readiness: a new broken model → 503; unloaded on purpose → ready again",
              st1 == 503 and failed_names(body1) == ["b3"] and r.status_code == 200 and
              st2 == 200, (st1, body1, r.status_code, st2, body2))

    with L.RDaemon(config={"strict_readiness": False}, models=broken,
                   name="lenient readiness daemon") as d:
        try:
            d.start(timeout=15)
            st, body = ready(d)
        except RuntimeError as e:
            st, body = None, str(e)[-600:]
        check("strict_readiness false: every model failed and still 200 {\"ready\": true}",
              st == 200 and body == {"ready": True}, (st, body))


def mdwe():
    """In the child: the kernel's MemoryDenyWriteExecute (Linux >= 6.3)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:            # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        os._exit(97)


def test_mdwe_readiness():
    L.use_binary(L.asan_binary())
    probe = os.fork()
    if probe == 0:
        mdwe()
        os._exit(0)
    _, status = os.waitpid(probe, 0)
    if os.WEXITSTATUS(status) != 0:
        L.R.skip("MemoryDenyWriteExecute readiness", "prctl(PR_SET_MDWE) unsupported here")
        return
    with L.RDaemon(shipped=True, name="mdwe daemon") as d:
        saved = T._die_with_parent
        T._die_with_parent = lambda: (saved(), mdwe())
        try:
            d.start(ready=False)
        finally:
            T._die_with_parent = saved
        wait_reloads(d, 1, 30)
        st, body = ready(d)
        errs = [m.get("error", "") for m in body.get("failed_models", [])] \
            if isinstance(body, dict) else []
        print("# under MemoryDenyWriteExecute: %s" % (errs[:1],), flush=True)
        live = d.get("/v2/health/live")
        check("MemoryDenyWriteExecute: the daemon runs (live 200) but oneDNN cannot make code "
              "executable, every model fails and /v2/health/ready is 503 naming them",
              live.status_code == 200 and st == 503 and
              failed_names(body) == ["gen3d", "up1d", "up2d"] and
              all("oneDNN" in e for e in errs), (live.status_code, st, body))


def main():
    only = os.environ.get("ROBUST_ONLY")
    for t in (test_non_regular_files, test_versions, test_strict_readiness, test_mdwe_readiness,
              test_reload_stall):
        if not only or only == t.__name__:
            L.R.run(t)


if __name__ == "__main__":
    L.main_guard(main, L.release_binary(), 600)
