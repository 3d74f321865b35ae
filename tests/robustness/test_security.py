#!/usr/bin/python3
"""Security properties of deconvd (ASan build).

- Default bind: with no `listen` anywhere the daemon listens on
  127.0.0.1:8080 only (run in a private network namespace when possible so
  port 8080 is free); every test daemon listens on loopback only.
- Bearer token: with auth_token set, everything but /v2/health/* needs
  `Authorization: Bearer <token>` (metrics and repository endpoints
  included); near-miss tokens are refused; the token never reaches the log.
- Log hygiene: request paths, methods and ids carrying newlines, quotes,
  backslashes, control bytes, invalid UTF-8 and fake `key=value` pairs
  leave exactly one well-formed logfmt (or JSON) line per event.
"""
import base64
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time

import numpy as np
import requests

import rlib as L

T = L.T
check = L.check

X = np.array([[[1, 2], [3, 4]]], dtype=np.float32)
GOOD = json.dumps(T.infer_body(X)).encode()


# ------------------------------------------------------------ default bind

def test_default_bind():
    tmp = tempfile.mkdtemp(prefix="dcvsec-")
    try:
        os.mkdir(os.path.join(tmp, "models"))
        T.copy_shipped_models(os.path.join(tmp, "models"), ["up1d"])
        cfg = os.path.join(tmp, "deconvd.json")
        with open(cfg, "w") as f:
            json.dump({"models_dir": "models"}, f)          # no "listen" key
        binary = L.asan_binary()
        cmd = [binary, "--config", cfg]                    # and no --listen
        probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
        if probe.returncode == 0:
            cmd = ["unshare", "-n"] + cmd
            where = "private network namespace"
        else:
            import socket
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", 8080))
            except OSError:
                T.R.skip("default bind", "port 8080 busy and no network namespace available")
                return
            finally:
                s.close()
            where = "host network"
        errp = os.path.join(tmp, "stderr.log")
        env = dict(os.environ)
        env.update(L.SAN_ENV)
        with open(errp, "wb") as err:
            p = subprocess.Popen(cmd, stdout=err, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                 cwd="/")
        try:
            ok = T.wait_until(lambda: "msg=listening" in open(errp).read() or p.poll() is not None,
                              30, 0.05)
            log = open(errp).read()
            addrs = L.listening_addresses(p.pid) if ok and p.poll() is None else []
            check("default bind (%s): logs host=127.0.0.1 port=8080" % where,
                  "host=127.0.0.1 port=8080" in log, log[-800:])
            check("default bind: the only listening socket is 127.0.0.1:8080 (got %s)" % addrs,
                  addrs == [("127.0.0.1", 8080)], addrs)
        finally:
            if p.poll() is None:
                p.terminate()
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait(5)
        log = open(errp).read()
        check("default bind daemon: exit 0, no sanitizer report",
              rc == 0 and not L.sanitizer_lines(log), (rc, L.sanitizer_lines(log)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------ bearer token

PROTECTED = [("GET", "/metrics", None), ("GET", "/v2", None), ("GET", "/v2/models/up1d", None),
             ("GET", "/v2/models/up1d/ready", None), ("GET", "/v2/models/up1d/config", None),
             ("GET", "/v2/models/stats", None), ("GET", "/v2/models/up1d/stats", None),
             ("POST", "/v2/models/up1d/infer", GOOD),
             ("POST", "/v2/models/up1d/shape", b'{"input_shape":[1,4,2]}'),
             ("POST", "/v2/shape", b'{"class_name":"Conv1DTranspose","config":{"filters":1,'
                                   b'"kernel_size":3},"input_shape":[1,4,1]}'),
             ("POST", "/v2/ops/conv1d_transpose",
              b'{"input":{"shape":[1,2,1],"data":[1,2]},"filters":{"shape":[1,1,1],"data":[1]},'
              b'"output_shape":[1,2,1],"padding":"VALID"}'),
             ("POST", "/v2/repository/index", b"{}"),
             ("POST", "/v2/repository/models/up1d/load", b"{}"),
             ("GET", "/v1/models/up1d", None), ("GET", "/v1/models/up1d/metadata", None),
             ("POST", "/v1/models/up1d:predict", b'{"instances":[[[1,2],[3,4]]]}'),
             ("GET", "/nonexistent", None)]


def test_token():
    token = "s3cr3t-" + secrets.token_hex(16)
    with L.RDaemon(config={"auth_token": token, "log_level": "debug"}, shipped=["up1d"],
                   name="token daemon") as d:
        d.start()
        p = d.port
        for path in ("/v2/health/live", "/v2/health/ready"):
            r = requests.get(d.url(path), timeout=10)
            check("token: %s open without a token (200)" % path, r.status_code == 200,
                  r.status_code)
        bad = []
        for m, path, body in PROTECTED:
            r = requests.request(m, d.url(path), data=body, timeout=30)
            if not (L.is_json_error(r, (401,)) and r.headers.get("WWW-Authenticate") == "Bearer"):
                bad.append((m, path, r.status_code, r.text[:100]))
        check("token: %d endpoints (metrics, repository, inference, metadata...) refuse a "
              "request without a token: 401 JSON + WWW-Authenticate" % len(PROTECTED),
              not bad, bad)
        near = {"same length, last char": token[:-1] + ("0" if token[-1] != "0" else "1"),
                "same length, first char": ("S" + token[1:]),
                "prefix": token[:-1], "longer": token + "x", "empty": "",
                "doubled": token + token, "case-folded": token.upper(),
                "trailing space": token + " ", "NUL inside": token[:4] + "\x00" + token[4:]}
        bad = []
        for what, t in near.items():
            for header in ("Bearer " + t,
                           "Basic " + base64.b64encode(("x:" + token).encode()).decode()
                           if what == "empty" else None,
                           "Bearer" + token if what == "empty" else None,
                           "Bearer\t" + token if what == "empty" else None,
                           token if what == "empty" else None):
                if header is None:
                    continue
                req = L.http_req("GET", "/metrics", headers={"Authorization": header})
                r = L.raw(p, req)
                if r.status != 401:
                    bad.append((what, header[:12], r.status))
        r = L.raw(p, L.http_req("GET", "/metrics?access_token=" + token))
        if r.status != 401:
            bad.append(("query string", r.status))
        r = L.raw(p, L.http_req("GET", "/metrics", headers={"X-Auth-Token": token}))
        if r.status != 401:
            bad.append(("other header", r.status))
        check("token: near-miss tokens and other schemes/places are refused (401)", not bad, bad)
        # a client without the token cannot make the server buffer its upload:
        # one that waits for 100 Continue gets the 401 on the headers alone,
        # one that sends the body gets it once the body is read and dropped
        req = L.http_req("POST", "/v2/models/up1d/infer",
                         headers={"Content-Length": "50000000", "Expect": "100-continue"})
        r = L.raw(p, req, timeout=5)
        check("token: a 50 MB upload without the token (Expect: 100-continue) gets its 401 "
              "before any body byte (%.0f ms)" % (1e3 * r.elapsed),
              r.status == 401 and L.is_json_error(r, (401,)) and r.elapsed < 2,
              (r.status, r.elapsed, r.error))
        rss0 = L.rss_kb(d.proc.pid) or 0
        head = L.http_req("POST", "/v2/models/up1d/infer", headers={"Content-Length": "50000000"})
        r = L.raw(p, b"", timeout=30, chunks=[head] + [b" " * (1 << 20)] * 47 + [b" " * 719232])
        grew = ((L.rss_kb(d.proc.pid) or 0) - rss0) / 1024
        check("token: a 50 MB upload without the token, body sent: 401 after it, not buffered "
              "(RSS +%.0f MB)" % grew, r.status == 401 and L.is_json_error(r, (401,))
              and grew < 16, (r.status, r.error, grew))
        # RFC 9110 §11.1: the scheme is case-insensitive; RFC 6750 allows 1*SP
        odd = [h for h in ("bearer " + token, "BEARER " + token, "Bearer   " + token)
               if L.raw(p, L.http_req("GET", "/metrics", headers={"Authorization": h})).status
               != 200]
        check("token: the scheme in any case, with extra spaces, is accepted", not odd,
              [h[:9] for h in odd])
        ok = []
        for m, path, body in PROTECTED:
            r = requests.request(m, d.url(path), data=body, timeout=30,
                                 headers={"Authorization": "Bearer " + token})
            ok.append(r.status_code == (404 if path == "/nonexistent" else 200)
                      or (path, r.status_code, r.text[:100]))
        check("token: the right token opens every endpoint", all(x is True for x in ok),
              [x for x in ok if x is not True])
        r = requests.post(d.url("/v2/repository/models/up1d/unload"), timeout=30,
                          headers={"Authorization": "Bearer " + token})
        r2 = requests.post(d.url("/v2/repository/models/up1d/load"), timeout=30,
                           headers={"Authorization": "Bearer " + token})
        check("token: repository unload/load work with the token", r.status_code == 200 and
              r2.status_code == 200, (r.text, r2.text))
        time.sleep(0.2)
        log = d.log()
        check("token: the token never appears in the log (%d bytes, log_level debug)" % len(log),
              token not in log and token[7:23] not in log and "Authorization" not in log
              and token.upper() not in log, "")
        check("token: refused requests are still logged (status=401)", "status=401" in log, "")


# ------------------------------------------------------------ log hygiene

NASTY_PATHS = ["/v2/models/a%0Ab", "/v2/models/a%0D%0Ats=2000-01-01T00:00:00Z%20level=error"
               "%20msg=evil", "/v2/models/q%22uote", "/v2/models/back%5Cslash",
               "/v2/models/sp%20ace=x", "/v2/models/%00nul", "/v2/models/%FF%FE%C0%AF",
               "/v2/models/%E2%80%A8ls", "/v2/models/%1B%5B31mred", "/v2/models/\x01raw",
               "/v2/models/raw\"quote", "/v2/models/x/infer%0A", "/v2/repository/models/a%0Ab/load",
               "/v1/models/a%0A:predict", "/" + "%0A" * 3000, "/v2/models/" + "\u00e9" * 50]


def nasty_requests(port):
    """Sends the nasty requests; returns how many reached deconvd (answered
    with JSON; MHD itself refuses some, e.g. a newline inside the method,
    with an HTML page and no access line)."""
    reqs = []
    for path in NASTY_PATHS:
        for m in ("GET", "POST"):
            reqs.append(L.http_req(m, path, b"{}" if m == "POST" else b""))
    for m in ('GE"T', "G\nT", "G\\T", "msg=x", "G\xffT"):
        reqs.append(L.http_req(m, "/v2/health/live"))
    for rid in ('a"b', "line1\nline2", "ts=evil level=error", "\\\\", "\x00\x01\x1b[0m",
                "\u2028", "x" * 5000):
        body = json.dumps(T.infer_body(X, id=rid)).encode()
        reqs.append(L.http_req("POST", "/v2/models/up1d/infer", body))
    reqs.append(L.http_req("POST", "/v2/models/up1d/infer", b'{"id":"\xff\n","inputs":[]}'))
    reached, odd = 0, []
    for q in reqs:
        r = L.raw(port, q)
        if r.responses and r.responses[0][1].get("content-type") == "application/json":
            reached += 1
        else:
            odd.append((q[:50], r))
    return reached, len(reqs), odd


def test_log_hygiene():
    for fmt in ("logfmt", "json"):
        with L.RDaemon(config={"log_format": fmt, "log_level": "debug"}, shipped=["up1d"],
                       name="log %s daemon" % fmt) as d:
            d.start()
            before = sum(1 for ln in L.log_lines(d) if b"access" in ln)
            sent, total, odd = nasty_requests(d.port)
            time.sleep(0.3)
            lines = L.log_lines(d)
            if fmt == "logfmt":
                bad = [ln for ln in lines if not L.logfmt_ok(ln)]
                access = [ln for ln in lines if ln.startswith(b"ts=") and b" msg=access " in ln]
                injected = [ln for ln in lines if b"msg=evil" in ln.split(b" path=")[0]]
            else:
                bad, access, injected = [], [], []
                for ln in lines:
                    try:
                        o = json.loads(ln.decode("utf-8"))
                    except (ValueError, UnicodeDecodeError):
                        bad.append(ln)
                        continue
                    if o.get("msg") == "access":
                        access.append(ln)
                    if o.get("msg") == "evil" or o.get("ts", "").startswith("2000"):
                        injected.append(ln)
            check("log %s: every line one well-formed %s record, valid UTF-8 (%d lines)"
                  % (fmt, fmt, len(lines)), not bad, bad[:3])
            # every request deconvd answered is logged once; nothing adds lines (MHD
            # itself refuses a few, e.g. a newline inside the method, without one)
            logged = len(access) - before
            check("log %s: one access line per request (%d answered by deconvd, %d logged, "
                  "%d sent)" % (fmt, sent, logged, total), sent <= logged <= total,
                  (odd, [ln[:200] for ln in access[-5:]]))
            check("log %s: no injected record" % fmt, not injected, injected[:2])
            check("log %s: raw control bytes never reach the log" % fmt,
                  not any(c in b"".join(lines) for c in (b"\x00", b"\x01", b"\x1b", b"\r")), "")


def test_listen_needs_a_host():
    tmp = tempfile.mkdtemp(prefix="dcvsec-")
    try:
        cfg = os.path.join(tmp, "deconvd.json")
        for how, cfgdoc, args in (("--listen :0", {"models_dir": "."}, ["--listen", ":0"]),
                                  ('config "listen": ":0"', {"listen": ":0", "models_dir": "."},
                                   [])):
            with open(cfg, "w") as f:
                json.dump(cfgdoc, f)
            env = dict(os.environ)
            env.update(L.SAN_ENV)
            p = subprocess.run([L.asan_binary(), "--config", cfg] + args, capture_output=True,
                               text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
            check("%s (no host) is refused, exit 2, not every interface" % how,
                  p.returncode == 2 and "0.0.0.0:PORT" in p.stderr, (p.returncode, p.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_loopback_only():
    with L.RDaemon(shipped=["up1d"], name="loopback daemon") as d:
        d.start()
        addrs = L.listening_addresses(d.proc.pid)
        check("test daemons listen on 127.0.0.1 only (%s)" % addrs,
              addrs and all(a[0] == "127.0.0.1" for a in addrs), addrs)


def main():
    L.R.run(test_default_bind)
    L.R.run(test_loopback_only)
    L.R.run(test_listen_needs_a_host)
    L.R.run(test_token)
    L.R.run(test_log_hygiene)


if __name__ == "__main__":
    L.main_guard(main, L.asan_binary(), 180)
