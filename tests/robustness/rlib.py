"""rlib.py — helpers shared by the robustness suites (tests/robustness/).

Builds on tests/blackbox/dcvtest.py (imported, not modified): its Daemon
starts deconvd in a temp dir on an ephemeral 127.0.0.1 port. Added here:

- RDaemon: a Daemon that can pass extra environment variables, that keeps
  its stderr log under $ROBUST_LOGDIR after the run, and whose exit checks
  (on top of "exit code 0 after SIGTERM") that the log holds no
  AddressSanitizer / LeakSanitizer / UBSan report.
- raw HTTP over sockets (requests cannot lie about Content-Length or
  pipeline), with a response parser.
- /proc probes: RSS, open fds, listening addresses of a pid.
- a strict logfmt line parser for the log-injection checks.

Everything is bounded: every socket has a timeout, every loop a deadline.
"""
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "blackbox"))

import dcvtest as T  # noqa: E402  (path set just above)

check = T.check
R = T.R

CI = os.environ.get("ROBUST_CI", "") not in ("", "0")
LOGDIR = os.environ.get("ROBUST_LOGDIR", os.path.join(ROOT, "build", "robustness"))

# Sanitizer settings for the ASan build (ignored by the release build).
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1:"
                    "detect_stack_use_after_return=0:print_summary=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    "LSAN_OPTIONS": "max_leaks=20",
}
SAN_PATTERNS = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|"
                          r"SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer")


def asan_binary():
    return os.path.abspath(os.environ.get("DECONVD_ASAN_BIN",
                                          os.path.join(ROOT, "build-asan", "deconvd")))


def release_binary():
    return os.path.abspath(os.environ.get("DECONVD_BIN", os.path.join(ROOT, "build", "deconvd")))


def use_binary(path):
    """dcvtest reads DECONVD_BIN when it starts a daemon."""
    os.environ["DECONVD_BIN"] = path


def sanitizer_lines(log):
    return [ln for ln in log.splitlines() if SAN_PATTERNS.search(ln)]


class RDaemon(T.Daemon):
    """dcvtest.Daemon + extra env + sanitizer check + kept log."""

    def __init__(self, *a, env=None, **kw):
        super().__init__(*a, **kw)
        self.env = dict(SAN_ENV)
        self.env.update(env or {})
        self.exit_code = None

    @contextlib.contextmanager
    def _env(self):
        """self.env in os.environ (which the daemon inherits) meanwhile."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def start(self, ready=True, timeout=60.0):
        with self._env():
            return super().start(ready=ready, timeout=timeout)

    def start_quiet(self, timeout=60.0):
        """Like start(), for a daemon whose log_level hides msg=listening:
        the port is read from /proc (its listening socket)."""
        with self._env():
            cmd = [T.binary_path(), "--config", self.config_path, "--listen", "127.0.0.1:0"]
            self._err = open(self.stderr_path, "wb")
            self.proc = subprocess.Popen(cmd + self.args, stdin=subprocess.DEVNULL,
                                         stdout=self._err, stderr=self._err, cwd="/")
        deadline = time.monotonic() + timeout
        while self.port is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("deconvd did not listen:\n" + self.log())
            addrs = listening_addresses(self.proc.pid)
            if addrs:
                self.port = addrs[0][1]
            else:
                time.sleep(0.02)
        self.base = "http://127.0.0.1:%d" % self.port
        self.wait_ready(max(1.0, deadline - time.monotonic()))
        return self

    def keep_log(self):
        try:
            os.makedirs(LOGDIR, exist_ok=True)
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)
            shutil.copy(self.stderr_path, os.path.join(LOGDIR, safe + ".log"))
        except OSError:
            pass

    def finish(self, timeout=30.0):
        """SIGTERM, wait, and check exit 0 + a clean sanitizer log."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.exit_code = self.stop(timeout)
        else:
            self.exit_code = self.proc.returncode
        log = self.log()
        check("%s: exit code 0 after SIGTERM" % self.name, self.exit_code == 0,
              "exit code %r; log tail:\n%s" % (self.exit_code, log[-3000:]))
        bad = sanitizer_lines(log)
        check("%s: no sanitizer report (ASan/LSan/UBSan) in stderr" % self.name, not bad,
              "\n".join(bad[:20]) + "\n" + log[-4000:])
        return self.exit_code

    def __exit__(self, *exc):
        try:
            if self.proc is not None:
                self.finish()
        finally:
            self.keep_log()
            self.cleanup()
        return False


# ------------------------------------------------------------------ raw HTTP

def parse_responses(buf):
    """Splits raw bytes into [(status, {header: value}, body)] using
    Content-Length (every deconvd/MHD answer has one). Stops at the first
    incomplete response."""
    out = []
    while buf:
        he = buf.find(b"\r\n\r\n")
        if he < 0:
            break
        head = buf[:he].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", head[0])
        if not m:
            break
        hdrs = {}
        for ln in head[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        body = buf[he + 4:he + 4 + n]
        if len(body) < n:
            break
        out.append((int(m.group(1)), hdrs, body))
        buf = buf[he + 4 + n:]
    return out


class RawResult:
    def __init__(self, data, closed, elapsed, error=None):
        self.data, self.closed, self.elapsed, self.error = data, closed, elapsed, error
        self.responses = parse_responses(data)

    @property
    def status(self):
        return self.responses[0][0] if self.responses else None

    @property
    def body(self):
        return self.responses[0][2] if self.responses else b""

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return "RawResult(status=%r closed=%r %.2fs err=%r data=%r)" % (
            self.status, self.closed, self.elapsed, self.error, self.data[:300])


def raw(port, data, timeout=5.0, want=1, shutdown_write=False, chunks=None, gap=0.0):
    """Sends data (or the list chunks, gap seconds apart) and reads until
    `want` responses are in, the server closes, or timeout. Never raises for
    network errors: they are recorded in .error."""
    t0 = time.monotonic()
    got, closed, err = b"", False, None
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return RawResult(b"", True, time.monotonic() - t0, repr(e))
    try:
        for c in (chunks if chunks is not None else [data]):
            s.sendall(c)
            if gap:
                time.sleep(gap)
        if shutdown_write:
            s.shutdown(socket.SHUT_WR)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                c = s.recv(1 << 16)
            except socket.timeout:
                break
            if not c:
                closed = True
                break
            got += c
            if len(parse_responses(got)) >= want:
                break
    except OSError as e:
        err = repr(e)
        closed = True
    finally:
        s.close()
    return RawResult(got, closed, time.monotonic() - t0, err)


def http_req(method, path, body=b"", headers=None, version="HTTP/1.1", close=True):
    h = {"Host": "127.0.0.1"}
    if body or method in ("POST", "PUT"):
        h["Content-Length"] = str(len(body))
    if close:
        h["Connection"] = "close"
    h.update(headers or {})
    lines = ["%s %s %s" % (method, path, version)] + ["%s: %s" % kv for kv in h.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def is_json_error(r, codes):
    """True when r (RawResult or requests.Response) is one of `codes` with a
    {"error": "..."} JSON body that is valid UTF-8."""
    if isinstance(r, RawResult):
        status, body = r.status, r.body
    else:
        status, body = r.status_code, r.content
    if status not in codes:
        return False
    try:
        d = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(d, dict) and isinstance(d.get("error"), str)


def health_ok(port, timeout=5.0):
    r = raw(port, http_req("GET", "/v2/health/live"), timeout=timeout)
    return r.status == 200


# ----------------------------------------------------------------- /proc

def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def socket_fds(pid):
    n = 0
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        return None
    return n


def listening_addresses(pid):
    """[(ip, port)] of the TCP sockets in LISTEN state owned by pid."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            m = re.match(r"socket:\[(\d+)\]", link)
            if m:
                inodes.add(m.group(1))
    except OSError:
        return []
    out = []
    for fname, v6 in (("tcp", False), ("tcp6", True)):
        try:
            with open("/proc/%d/net/%s" % (pid, fname)) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            p = row.split()
            if len(p) < 10 or p[3] != "0A" or p[9] not in inodes:
                continue
            hexip, hexport = p[1].split(":")
            if v6:
                ip = socket.inet_ntop(socket.AF_INET6, _v6(hexip))
            else:
                ip = socket.inet_ntoa(bytes.fromhex(hexip)[::-1])
            out.append((ip, int(hexport, 16)))
    return out


def _v6(hexip):
    b = bytes.fromhex(hexip)
    return b"".join(b[i:i + 4][::-1] for i in range(0, 16, 4))


# ------------------------------------------------------------------ logfmt

_LOGFMT_VALUE = r'(?:"(?:[^"\\\x00-\x1f]|\\["\\nrt]|\\u[0-9a-f]{4})*"|[^\s"=\\\x00-\x1f\x7f]+)'
_LOGFMT_LINE = re.compile(r'^ts=\S+ level=(?:debug|info|warn|error) msg=%s'
                          r'(?: [A-Za-z_][A-Za-z0-9_]*=%s)*$' % (_LOGFMT_VALUE, _LOGFMT_VALUE))


def logfmt_ok(line):
    """One well-formed logfmt line: ts, level, msg first, then key=value
    pairs; values bare (no space, quote, =, backslash or control byte) or
    double-quoted with only \\" \\\\ \\n \\r \\t \\uXXXX escapes; valid UTF-8."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return bool(_LOGFMT_LINE.match(line))


def log_lines(daemon):
    with open(daemon.stderr_path, "rb") as f:
        return f.read().split(b"\n")[:-1]


# ------------------------------------------------------------------ misc

def percentile(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    i = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[i]


def metric(daemon, name, timeout=5):
    """Value of an unlabelled metric line, or None."""
    import requests
    try:
        t = daemon.get("/metrics", timeout=timeout).text
    except requests.RequestException:
        return None
    for ln in t.splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return None


def wait_idle(daemon, timeout=30):
    """Until deconvd_inflight_requests is 0."""
    return T.wait_until(lambda: metric(daemon, "deconvd_inflight_requests") == 0, timeout, 0.05)


# ------------------------------------------------------------ health probe

HEALTH_P99_S = 0.050          # the goal: /v2/health/live p99 during any attack

PROBE = r"""
import http.client, json, sys, time
port, every = int(sys.argv[1]), float(sys.argv[2])
lat, bad, conn = [], 0, None
sys.stdout.write("ready\n"); sys.stdout.flush()
import select
while not select.select([sys.stdin], [], [], 0)[0]:
    t0 = time.monotonic()
    try:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/v2/health/live")
        r = conn.getresponse()
        r.read()
        bad += r.status != 200
    except (OSError, http.client.HTTPException):
        bad += 1
        conn = None
    lat.append(time.monotonic() - t0)
    time.sleep(every)
print(json.dumps({"lat": lat, "bad": bad}))
"""


class HealthProbe:
    """/v2/health/live every `every` s from one keep-alive connection of a
    separate process (so that the test's own threads cannot delay it)."""

    def __init__(self, port, every=0.01):
        self.port, self.every = port, every
        self.lat, self.bad = [], 0

    def __enter__(self):
        self.p = subprocess.Popen(["/usr/bin/python3", "-c", PROBE, str(self.port),
                                   str(self.every)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.p.stdout.readline()
        return self

    def __exit__(self, *exc):
        try:
            out, _ = self.p.communicate("stop\n", timeout=30)
            res = json.loads(out.strip().splitlines()[-1])
            self.lat, self.bad = res["lat"], res["bad"]
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            self.p.kill()
            self.bad += 1
        return False

    def verdict(self, what):
        p99, mx = percentile(self.lat, 99), max(self.lat or [0])
        figure("%s: health p99 / max (ms), probes" % what,
                 "%.1f / %.1f, %d" % (1e3 * p99, 1e3 * mx, len(self.lat)))
        check("%s: /v2/health/live p99 %.1f ms < %d ms from a separate client (%d probes, "
              "%d failed)" % (what, 1e3 * p99, 1e3 * HEALTH_P99_S, len(self.lat), self.bad),
              len(self.lat) >= 5 and p99 < HEALTH_P99_S and self.bad == 0,
              "max %.1f ms" % (1e3 * mx))


def figure(name, value):
    """A '# figure:' line the runner collects into the summary."""
    print("# figure: %s = %s" % (name, value), flush=True)


def main_guard(fn, binary, budget_s):
    """Runs a suite's main() against binary, bounded by budget_s seconds
    (ROBUST_BUDGET_S overrides), and exits with the report's status."""
    if not os.access(binary, os.X_OK):
        print("deconvd binary not found at %s" % binary)
        print("0 passed, 1 failed")
        sys.exit(1)
    use_binary(binary)
    budget = int(os.environ.get("ROBUST_BUDGET_S", budget_s))

    def alarm(signum, frame):
        raise TimeoutError("suite still running after %d s" % budget)
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(budget)
    try:
        fn()
    except Exception:             # noqa: BLE001
        import traceback
        check("suite ran to completion", False, traceback.format_exc())
    signal.alarm(0)
    sys.exit(R.finish())


# ------------------------------------------------------------ model files

def npy_bytes(shape_text, descr="<f4", payload=b"", fortran="False", magic=b"\x93NUMPY",
              version=b"\x01\x00", hlen=None):
    """A .npy file whose header says whatever it is told (lying headers)."""
    h = ("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text))
    h = h.encode() + b" " * (63 - (10 + len(h)) % 64) + b"\n"
    n = len(h) if hlen is None else hlen
    return magic + version + struct.pack("<H", n) + h + payload


# ------------------------------------------------------------ heavy model

HEAVY_C = 64
HEAVY_K = 9


# dcvtest's slow model, 64 channels by default here (the suites' bodies stay small)
heavy_model = functools.partial(T.heavy_model, c=HEAVY_C, k=HEAVY_K)
heavy_output = T.heavy_output


def heavy_body(x):
    """Binary request (body, headers) with a binary answer."""
    return T.binary_request(np.asarray(x, dtype="<f4").tobytes(), x.shape, binary_output=True)


def calibrate(d, target=0.4, name="heavy", c=HEAVY_C, cap=256, session=None):
    """Input side for which one request on `name` takes about target s."""
    import requests
    post = (session or requests).post
    side, dt = 32, 0.0
    for _ in range(5):
        x = np.zeros((1, side, side, c), dtype=np.float32)
        body, h = heavy_body(x)
        post(d.url("/v2/models/%s/infer" % name), data=body, headers=d.headers(h), timeout=120)
        t0 = time.monotonic()
        r = post(d.url("/v2/models/%s/infer" % name), data=body, headers=d.headers(h),
                 timeout=120)
        dt = time.monotonic() - t0
        if r.status_code != 200:
            raise RuntimeError("calibration request failed: %s %s" % (r.status_code, r.text[:300]))
        if 0.6 * target <= dt <= 1.6 * target or side >= cap:
            break
        side = int(min(cap, max(8, side * (target / max(dt, 1e-3)) ** 0.5)))
    print("# %s model: side %d takes %.3fs" % (name, side, dt), flush=True)
    return side, dt

