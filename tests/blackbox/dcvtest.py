"""dcvtest.py — shared helpers for the deconvd black-box tests.

Starts deconvd in its own temporary directory (config + models dir), on an
ephemeral port of 127.0.0.1, waits for readiness, and stops it with SIGTERM
(asserting exit code 0). Also holds the check()/report() counters and an
independent NumPy reference for transposed convolutions (TensorFlow's
conv_transpose rule, Keras output lengths).

Everything here is bounded in time: no wait loop runs without a deadline.

Slow mode (`make valgrind-test` uses it):
  DCV_TEST_VALGRIND=1     every daemon (and every CLI run of the binary) runs
                          under valgrind memcheck with VALGRIND_DEFAULT below;
                          a non-empty value other than 0/1 is the valgrind
                          command itself (the Makefile passes its VALGRIND).
  DECONVD_WRAPPER="cmd"   any other command prefix (shell words), e.g.
                          "taskset -c 0"; a valgrind prefix is treated as above.
  DCV_TEST_SLOW=factor    multiplies every client timeout, readiness wait,
                          deadline and the daemon's own time limits
                          (request_timeout_ms, drain_timeout_ms,
                          connection_timeout_s); default VALGRIND_SLOW under
                          valgrind, else 1.
Under valgrind each process writes its own log under <build>/valgrind/
(<build> = the directory of DECONVD_BIN) and, once it has exited, one check
per process fails if memcheck reported any error or a definite leak.
The few checks that cannot hold under valgrind's one-thread-at-a-time
scheduling skip themselves there (skip_under_valgrind: printed with the
reason, counted by scripts/test-summary); everything else runs with scaled
limits.
"""
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import numpy as np
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SHIPPED_MODELS = os.path.join(ROOT, "config", "models")


def binary_path():
    b = os.environ.get("DECONVD_BIN", os.path.join(ROOT, "build", "deconvd"))
    return os.path.abspath(b)


# ---------------------------------------------------------------- slow mode

# Keep in step with VALGRIND in the Makefile (which passes its own copy).
# --vex-guest-max-insns=25: VEX's real default is 60 instructions per
# superblock (valgrind --help says 50); at 60 memcheck aborts with "VEX
# temporary storage exhausted" on the masked tail of oneDNN's AVX2
# jit_single_blk_kernel (a weights reorder). It changes no memcheck verdict.
VALGRIND_DEFAULT = ("valgrind --trace-children=yes --leak-check=full "
                    "--errors-for-leak-kinds=definite --smc-check=all-non-file "
                    "--vex-guest-max-insns=25 '--trace-children-skip=*/python3*,*/sh' "
                    "--suppressions=scripts/valgrind.supp")
VALGRIND_SLOW = 10.0
VALGRIND_ERROR_EXITCODE = 99


def _wrapper():
    w = os.environ.get("DECONVD_WRAPPER", "").strip()
    vg = os.environ.get("DCV_TEST_VALGRIND", "").strip()
    if not w and vg and vg != "0":
        w = VALGRIND_DEFAULT if vg == "1" else vg
    argv = shlex.split(w)
    # paths in the Makefile's flags are relative to the repository root;
    # daemons run with cwd "/"
    for i, a in enumerate(argv):
        m = re.match(r"^(--suppressions=)(.*)$", a)
        if m and not os.path.isabs(m.group(2)):
            argv[i] = m.group(1) + os.path.join(ROOT, m.group(2))
    return argv


WRAPPER = _wrapper()
VALGRIND = bool(WRAPPER) and os.path.basename(WRAPPER[0]).startswith("valgrind")
SLOW = float(os.environ.get("DCV_TEST_SLOW") or (VALGRIND_SLOW if VALGRIND else 1.0))
SLOW_MODE = SLOW != 1.0 or bool(WRAPPER)
# daemon config keys that are time limits: scaled in slow mode
TIME_KEYS = {"request_timeout_ms": 3600000, "drain_timeout_ms": 3600000,
             "connection_timeout_s": 3600}
TIME_DEFAULTS = {"request_timeout_ms": 30000, "drain_timeout_ms": 10000,
                 "connection_timeout_s": 30}


def t(seconds):
    """A client-side time limit, scaled in slow mode."""
    return seconds * SLOW


def _scale_timeout(v):
    if isinstance(v, (int, float)):
        return v * SLOW
    if isinstance(v, tuple):
        return tuple(None if x is None else x * SLOW for x in v)
    return v


if SLOW != 1.0:
    # Every requests call (through the Daemon helpers or direct) gets its
    # timeout scaled here, once.
    _orig_session_request = requests.Session.request

    def _slow_session_request(self, method, url, **kw):
        if kw.get("timeout") is not None:
            kw["timeout"] = _scale_timeout(kw["timeout"])
        return _orig_session_request(self, method, url, **kw)
    requests.Session.request = _slow_session_request


def scaled_config(cfg):
    """cfg with the daemon's time limits scaled (the defaults made explicit)."""
    if SLOW == 1.0:
        return cfg
    cfg = dict(cfg)
    for key, cap in TIME_KEYS.items():
        v = cfg.get(key, TIME_DEFAULTS[key])
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            cfg[key] = min(cap, int(v * SLOW))
    return cfg


_seq = [0]


def _slug(s):
    return re.sub(r"[^A-Za-z0-9]+", "-", s).strip("-")[:40] or "x"


def wrapped(name, module=None):
    """(argv prefix, valgrind log prefix or None) for one run of the binary:
    the wrapper (if any) and the binary. name (and module, by default the
    running script) label the valgrind log."""
    if not WRAPPER:
        return [binary_path()], None
    if not VALGRIND:
        return WRAPPER + [binary_path()], None
    _seq[0] += 1
    d = os.path.join(os.path.dirname(binary_path()), "valgrind")
    os.makedirs(d, exist_ok=True)
    mod = module or os.path.splitext(os.path.basename(sys.argv[0] or "py"))[0]
    prefix = os.path.join(d, "%s.%d.%03d.%s" % (_slug(mod), os.getpid(), _seq[0], _slug(name)))
    argv = list(WRAPPER)
    if not any(a.startswith("--error-exitcode") for a in argv):
        argv.append("--error-exitcode=%d" % VALGRIND_ERROR_EXITCODE)
    argv.append("--log-file=%s.%%p.log" % prefix)
    return argv + [binary_path()], prefix


def valgrind_verdict(prefix):
    """(ok, detail) of the memcheck logs <prefix>.<pid>.log of one process
    (and any child it traced): no errors, no definite leaks, no valgrind
    abort, and a final ERROR SUMMARY (a killed process has none)."""
    files = sorted(glob.glob(glob.escape(prefix) + ".*.log"))
    if not files:
        return False, "no valgrind log %s.*.log" % prefix
    bad = []
    for f in files:
        try:
            with open(f, errors="replace") as fh:
                txt = fh.read()
        except OSError as e:
            bad.append("%s: %s" % (f, e))
            continue
        why = []
        es = re.findall(r"ERROR SUMMARY: ([\d,]+) errors", txt)
        if not es:
            why.append("no ERROR SUMMARY (process killed, or valgrind aborted)")
        elif int(es[-1].replace(",", "")) > 0:
            why.append("ERROR SUMMARY: %s errors" % es[-1])
        dl = re.findall(r"definitely lost: ([\d,]+) bytes", txt)
        if dl and int(dl[-1].replace(",", "")) > 0:
            why.append("definitely lost: %s bytes" % dl[-1])
        for pat in ("VEX temporary storage exhausted", "the 'impossible' happened",
                    "unhandled instruction bytes", "Valgrind's memory management: out of"):
            if pat in txt:
                why.append(pat)
        if why:
            # the error reports: everything after the preamble, up to the summaries
            body = [ln for ln in txt.splitlines()[6:] if "HEAP SUMMARY" not in ln]
            bad.append("%s: %s\n%s" % (f, "; ".join(why), "\n".join(body[:60])))
    return not bad, "\n".join(bad)


def check_valgrind(name, prefix):
    """One check per valgrind-run process, after it has exited."""
    if prefix is None:
        return True
    ok, detail = valgrind_verdict(prefix)
    return check("%s: valgrind memcheck clean (no errors, no definite leaks)" % name, ok,
                 detail)


# valgrind runs the daemon's threads one at a time, and a worker busy in a
# long oneDNN computation keeps valgrind's thread lock until the job is done
# (seen: the loop thread waited 13 s on it, with --fair-sched=yes as well).
LOOP_STARVED = ("valgrind runs one thread at a time and a worker computing the heavy "
                "request keeps its lock until done, so the loop thread takes no other "
                "request meanwhile")


def skip_under_valgrind(name, why):
    """Under valgrind: report check name as skipped (why), return True."""
    if not VALGRIND:
        return False
    R.skip(name, "under valgrind: " + why)
    return True


# ---------------------------------------------------------------- reporting

class Report:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print("ok   - %s" % name, flush=True)
        else:
            self.failed += 1
            self.failures.append(name)
            msg = "FAIL - %s" % name
            if detail:
                d = str(detail)
                msg += ": " + (d if len(d) < 1500 else d[:1500] + "...")
            print(msg, flush=True)
        return bool(cond)

    def skip(self, name, why):
        self.skipped += 1
        print("skip - %s: %s" % (name, why), flush=True)

    def run(self, fn, *args):
        """Runs one test function; an exception is one failure, not a crash."""
        try:
            fn(*args)
        except Exception:
            self.check("%s raised no exception" % fn.__name__, False, traceback.format_exc())

    def finish(self):
        if self.failures:
            print("failed checks: " + "; ".join(self.failures), flush=True)
        if self.skipped:
            print("%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped),
                  flush=True)
        else:
            print("%d passed, %d failed" % (self.passed, self.failed), flush=True)
        return 0 if self.failed == 0 else 1


R = Report()
check = R.check


# ------------------------------------------------------------------- daemon

def write_npy(path, arr):
    np.save(path, np.asarray(arr, dtype="<f4"))


def copy_shipped_models(models_dir, names=None):
    for f in os.listdir(SHIPPED_MODELS):
        stem = f.split(".")[0]
        if names is None or stem in names:
            shutil.copy(os.path.join(SHIPPED_MODELS, f), os.path.join(models_dir, f))


class Daemon:
    """One deconvd process in a temp dir.

    config: extra config keys (dict); models: {name: doc} written as
    <models_dir>/<name>.json (doc may be a str for raw/broken content);
    npy: {filename: array} written into models_dir; shipped: copy the
    example models too (True, or a list of names).
    """

    def __init__(self, config=None, models=None, npy=None, shipped=False, args=(),
                 name="deconvd"):
        self.tmp = tempfile.mkdtemp(prefix="dcvtest-")
        self.models_dir = os.path.join(self.tmp, "models")
        os.mkdir(self.models_dir)
        self.config_path = os.path.join(self.tmp, "deconvd.json")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.name = name
        cfg = {"listen": "127.0.0.1:0", "models_dir": "models", "log_level": "info"}
        cfg.update(config or {})
        cfg = scaled_config(cfg)
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        if shipped:
            copy_shipped_models(self.models_dir, None if shipped is True else shipped)
        for fname, arr in (npy or {}).items():
            write_npy(os.path.join(self.models_dir, fname), arr)
        for mname, doc in (models or {}).items():
            self.write_model(mname, doc)
        self.args = list(args)
        self.proc = None
        self.port = None
        self.base = None
        self.token = cfg.get("auth_token")
        self.vglog = None
        self.vg_checked = False

    def write_model(self, name, doc):
        path = os.path.join(self.models_dir, name + ".json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        os.replace(tmp, path)        # atomic: a reload never sees half a file

    def remove_model(self, name):
        os.unlink(os.path.join(self.models_dir, name + ".json"))

    def start(self, ready=True, timeout=20.0):
        # cwd "/": models_dir must resolve against the config file, not the cwd
        timeout = t(timeout)
        cmd, self.vglog = wrapped(self.name)
        cmd += ["--config", self.config_path, "--listen", "127.0.0.1:0"]
        cmd += self.args
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, cwd="/", preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("deconvd exited with %s before listening:\n%s"
                                   % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("deconvd did not log msg=listening in %.0fs:\n%s"
                                   % (timeout, self.log()))
            self.port = parse_listen_port(self.log())
            if self.port is None:
                time.sleep(0.02)
        self.base = "http://127.0.0.1:%d" % self.port
        if ready:
            self.wait_ready(max(1.0, deadline - time.monotonic()))
        return self

    def wait_ready(self, timeout=20.0):
        """timeout: already scaled (start passes what is left of its own)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                r = requests.get(self.base + "/v2/health/ready", timeout=2)
                if r.status_code == 200:
                    return True
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("deconvd exited with %s while loading:\n%s"
                                   % (self.proc.returncode, self.log()))
            time.sleep(0.05)
        raise RuntimeError("deconvd not ready after %.0fs:\n%s" % (timeout, self.log()))

    def url(self, path):
        return self.base + path

    def headers(self, extra=None):
        h = {}
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        h.update(extra or {})
        return h

    def get(self, path, **kw):
        kw.setdefault("timeout", 30)
        kw["headers"] = self.headers(kw.get("headers"))
        return requests.get(self.url(path), **kw)

    def post(self, path, body=None, **kw):
        kw.setdefault("timeout", 60)
        kw["headers"] = self.headers(kw.get("headers"))
        if body is not None and "data" not in kw:
            kw["data"] = json.dumps(body)
        return requests.post(self.url(path), **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 30)
        kw["headers"] = self.headers(kw.get("headers"))
        return requests.request(method, self.url(path), **kw)

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, n=10):
        """The last n log lines that are not access lines (crash messages
        such as glibc's 'double free detected' are kept)."""
        lines = [ln for ln in self.log().splitlines() if "msg=access" not in ln
                 and '"msg":"access"' not in ln]
        return "\n".join(lines[-n:])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=15.0):
        """SIGTERM, wait (bounded), kill on timeout. Returns the exit code
        (None if it had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(t(timeout))
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    def check_valgrind(self):
        """Under valgrind, once the process has exited: its memcheck verdict
        as one check (once per daemon)."""
        if self.vglog is None or self.vg_checked or self.alive():
            return
        self.vg_checked = True
        check_valgrind(self.name, self.vglog)

    def cleanup(self):
        self.kill()
        self.check_valgrind()
        try:
            self._err.close()
        except Exception:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            rc = self.stop()
            check("%s: exits 0 on SIGTERM" % self.name, rc == 0,
                  "exit code %r; log tail:\n%s" % (rc, self.tail()))
        elif self.proc is not None and self.proc.returncode not in (0, None):
            check("%s: still running at the end" % self.name, False,
                  "exit code %r; log tail:\n%s" % (self.proc.returncode, self.tail()))
        self.cleanup()
        return False


def _die_with_parent():
    """In the child: SIGKILL when the test process dies, so no daemon outlives
    an aborted test run (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


def answers_inference(d, model, x, timeout=5.0):
    """Preflight: does an inference come back at all within timeout s?
    When deferred answers hang, every later check would wait for its own
    client timeout; callers skip their inference checks instead."""
    try:
        r = requests.post(d.url("/v2/models/%s/infer" % model),
                          data=json.dumps(infer_body(x)), headers=d.headers(), timeout=timeout)
        ok = r.status_code == 200
        detail = "%s %s" % (r.status_code, r.text[:300])
    except requests.RequestException as e:
        ok, detail = False, "no answer within %.0f s (%s)" % (t(timeout), type(e).__name__)
    check("%s: an inference on %s is answered within %.0f s" % (d.name, model, t(timeout)), ok,
          detail)
    return ok


def parse_listen_port(log):
    for line in log.splitlines():
        if "listening" not in line:
            continue
        if line.startswith("{"):
            try:
                d = json.loads(line)
                if d.get("msg") == "listening":
                    return int(d["port"])
            except (ValueError, KeyError):
                continue
        elif re.search(r"\bmsg=listening\b", line):
            m = re.search(r"\bport=(\d+)", line)
            if m:
                return int(m.group(1))
    return None


def wait_until(pred, timeout=10.0, step=0.05):
    """Polls pred() until truthy or timeout (scaled in slow mode); returns
    the last value."""
    deadline = time.monotonic() + t(timeout)
    v = pred()
    while not v and time.monotonic() < deadline:
        time.sleep(step)
        v = pred()
    return v


def raw_http(port, data, timeout=5.0, read=True, shutdown_write=False):
    """Sends raw bytes to 127.0.0.1:port; returns what came back (bytes).
    timeout is scaled in slow mode."""
    timeout = t(timeout)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        if not read:
            return b""
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
            buf = b"".join(chunks)
            # stop once a full response with Content-Length is in
            m = re.search(rb"\r\ncontent-length:\s*(\d+)", buf, re.I)
            he = buf.find(b"\r\n\r\n")
            if m and he >= 0 and len(buf) >= he + 4 + int(m.group(1)):
                break
        return b"".join(chunks)
    finally:
        s.close()


# ------------------------------------------------------ KServe helpers

def infer_body(x, datatype="FP32", name="input", id=None, nested=False, outputs=True,
               binary_output=False):
    x = np.asarray(x)
    inp = {"name": name, "shape": list(x.shape), "datatype": datatype}
    if datatype == "BOOL":
        vals = [bool(v) for v in x.ravel().tolist()]
    else:
        vals = x.ravel().tolist()
    if nested:
        vals = np.asarray(vals, dtype=object).reshape(x.shape).tolist() if x.size else []
    inp["data"] = vals
    body = {"inputs": [inp]}
    if id is not None:
        body["id"] = id
    if outputs:
        body["outputs"] = [{"name": "output"}]
    if binary_output:
        body["parameters"] = {"binary_data_output": True}
    return body


def binary_request(x_bytes, shape, datatype="FP32", binary_output=False, id=None,
                   output_param=False, header_name="Inference-Header-Content-Length"):
    """(body bytes, headers) of a binary-tensor-extension request."""
    hdr = {"inputs": [{"name": "input", "shape": list(shape), "datatype": datatype,
                       "parameters": {"binary_data_size": len(x_bytes)}}]}
    if id is not None:
        hdr["id"] = id
    if output_param:
        hdr["outputs"] = [{"name": "output", "parameters": {"binary_data": True}}]
    elif binary_output:
        hdr["parameters"] = {"binary_data_output": True}
    j = json.dumps(hdr).encode()
    return j + x_bytes, {header_name: str(len(j))}


def parse_binary_response(r):
    """(json header, float32 array or None) of a possibly binary answer."""
    hl = r.headers.get("Inference-Header-Content-Length")
    if hl is None:
        return r.json(), None
    hl = int(hl)
    head = json.loads(r.content[:hl].decode())
    raw = r.content[hl:]
    return head, np.frombuffer(raw, dtype="<f4")


def output_array(resp_json):
    out = resp_json["outputs"][0]
    return np.asarray(out["data"], dtype=np.float64).reshape(out["shape"])


# ------------------------------------------------------ NumPy reference

# The NumPy reference the unit tests use (tests/numpy_ref.py), written from
# TensorFlow's rule and sharing no code with deconvd.
sys.path.insert(0, os.path.join(ROOT, "tests"))
import numpy_ref  # noqa: E402

conv_transpose_ref = numpy_ref.conv_transpose      # channels last, float64
keras_length = numpy_ref.keras_output_length


def keras_ref(x, kernel, bias, strides, padding, dilation=None, activation="linear",
              output_padding=None, channels_first=False):
    """A Keras Conv{1,2,3}DTranspose layer on x."""
    x = np.asarray(x, dtype=np.float64)
    rank = x.ndim - 2
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    dilation = dilation or [1] * rank
    n = x.shape[1:-1]
    k = np.asarray(kernel).shape[:rank]
    out = [keras_length(n[j], k[j], strides[j], dilation[j], padding,
                        None if output_padding is None else output_padding[j])
           for j in range(rank)]
    y = conv_transpose_ref(x, kernel, strides, dilation, padding, out)
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.float64)
    y = numpy_ref.activation(activation, y)
    if channels_first:
        y = np.moveaxis(y, -1, 1)
    return y


def conv1d_doc(name, kfile, bfile, act="linear", filters=2):
    """A Conv1DTranspose model file (kernel 3, stride 2, same) on .npy weights."""
    return {"class_name": "Conv1DTranspose",
            "config": {"name": name, "filters": filters, "kernel_size": 3, "strides": 2,
                       "padding": "same", "activation": act},
            "weights": {"kernel": kfile, "bias": bfile}}


def shipped_weights(name):
    """(kernel, bias) of a model shipped in config/models."""
    return (np.load(os.path.join(SHIPPED_MODELS, name + ".kernel.npy")),
            np.load(os.path.join(SHIPPED_MODELS, name + ".bias.npy")))


def up2d_ref(x):
    """The shipped up2d model's answer for x, by the NumPy reference."""
    k, b = shipped_weights("up2d")
    return keras_ref(x, k, b, [2, 2], "same", activation="relu")


def up1d_ref(x):
    k, b = shipped_weights("up1d")
    return keras_ref(x, k, b, [2], "same")


def heavy_model(rng, name="heavy", c=128, k=9, scale=0.02):
    """(doc, npy files, kernel, bias) of a stride-1 SAME Conv2DTranspose with
    c channels in and out: c*c*k*k multiply-adds per pixel, so the time of a
    request scales with its input side (the suites' slow request)."""
    ker = (rng.standard_normal((k, k, c, c)) * scale).astype("<f4")
    b = (rng.standard_normal(c) * 0.1).astype("<f4")
    doc = {"class_name": "Conv2DTranspose",
           "config": {"name": name, "filters": c, "kernel_size": k, "strides": 1,
                      "padding": "same", "activation": "linear"},
           "weights": {"kernel": name + ".kernel.npy", "bias": name + ".bias.npy"}}
    return doc, {name + ".kernel.npy": ker, name + ".bias.npy": b}, ker, b


def heavy_output(r):
    """The (1, H, W, C) output of a binary answer."""
    head, data = parse_binary_response(r)
    return data.reshape(head["outputs"][0]["shape"])


def heavy_check(out, x, ker, b, rng, samples=24):
    """(ok, detail): out (1,H,W,C) against the exact transposed convolution
    of heavy_model's kernel at a few sampled pixels (a full NumPy reference
    takes too long without an optimized BLAS). Stride 1, SAME: output o is
    full position o + (K-1)//2, fed by input i through tap t = o + (K-1)//2 - i."""
    out = np.asarray(out)
    k_sz, c_out = ker.shape[0], ker.shape[2]
    if out.shape != x.shape[:3] + (c_out,):
        return False, "shape %s, want %s" % (out.shape, x.shape[:3] + (c_out,))
    n_h, n_w = x.shape[1], x.shape[2]
    pad = (k_sz - 1) // 2
    pts = [(0, 0), (n_h - 1, n_w - 1), (0, n_w - 1), (n_h // 2, n_w // 2)]
    pts += [(int(rng.integers(n_h)), int(rng.integers(n_w))) for _ in range(samples)]
    x64, k64 = x.astype(np.float64), ker.astype(np.float64)
    for oh, ow in pts:
        acc = b.astype(np.float64).copy()
        for th in range(k_sz):
            ih = oh + pad - th
            if not 0 <= ih < n_h:
                continue
            for tw in range(k_sz):
                iw = ow + pad - tw
                if 0 <= iw < n_w:
                    acc += k64[th, tw] @ x64[0, ih, iw]
        ok, why = close(out[0, oh, ow], acc, rtol=1e-3, atol=1e-3)
        if not ok:
            return False, "pixel (%d, %d): %s" % (oh, ow, why)
    return True, ""


class Bg(threading.Thread):
    """Runs fn(*args) in a thread, keeping its result or exception."""

    def __init__(self, fn, *args):
        super().__init__(daemon=True)
        self.fn, self.args, self.result = fn, args, None

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except Exception as e:      # noqa: BLE001
            self.result = e


def close(got, want, rtol=1e-4, atol=1e-5):
    """(ok, detail) comparing arrays, with the worst element on failure."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return False, "shape %s, want %s" % (got.shape, want.shape)
    if got.size == 0:
        return True, ""
    ok = np.allclose(got, want, rtol=rtol, atol=atol)
    if ok:
        return True, ""
    err = np.abs(got - want) - atol - rtol * np.abs(want)
    i = np.unravel_index(np.argmax(err), err.shape)
    return False, "max deviation at %s: got %r want %r (%d of %d elements off)" % (
        tuple(int(v) for v in i), float(got[i]), float(want[i]),
        int((err > 0).sum()), got.size)


def main_guard(fn):
    """Runs a test module's main() and exits with the report's status."""
    if not os.access(binary_path(), os.X_OK):
        print("deconvd binary not found at %s (set DECONVD_BIN)" % binary_path())
        print("0 passed, 1 failed")
        sys.exit(1)
    def alarm(signum, frame):
        raise TimeoutError("test module still running after %d s" % budget)
    budget = int(os.environ.get("DCV_TEST_BUDGET_S") or 170 * SLOW)
    if SLOW_MODE:
        print("# slow mode: %s, time limits x%g" % (" ".join(WRAPPER) or "no wrapper", SLOW),
              flush=True)
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(budget)
    try:
        fn()
    except Exception:
        check("test module ran to completion", False, traceback.format_exc())
    signal.alarm(0)
    sys.exit(R.finish())


def _sh_main(argv):
    """For the sh test (test_curl.sh):
    dcvtest.py --sh-setup MODULE NAME
                                 prints SLOW=<int> WRAP=<shell words before the
                                 binary> VGLOG=<log prefix> for eval
    dcvtest.py --valgrind-verdict NAME PREFIX
                                 prints one check line; exit 0 if clean"""
    if len(argv) == 3 and argv[0] == "--sh-setup":
        cmd, prefix = wrapped(argv[2], argv[1])
        print("SLOW=%d" % max(1, int(-(-SLOW // 1))))
        print("WRAP=%s" % shlex.quote(" ".join(shlex.quote(a) for a in cmd[:-1])))
        print("VGLOG=%s" % shlex.quote(prefix or ""))
        return 0
    if len(argv) == 3 and argv[0] == "--valgrind-verdict":
        return 0 if check_valgrind(argv[1], argv[2] or None) else 1
    print(_sh_main.__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_sh_main(sys.argv[1:]))
