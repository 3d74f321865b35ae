#!/usr/bin/python3
"""sd_notify protocol, as systemd's Type=notify sees it.

Starts the daemon with NOTIFY_SOCKET pointing at our own AF_UNIX datagram
socket (ephemeral port, a temporary copy of config/models) and checks:
READY=1 once the models are loaded; on SIGHUP, RELOADING=1 (with
MONOTONIC_USEC) then READY=1; STATUS= names the models that failed to load
and follows a repository unload (without a READY=1 of its own); on SIGTERM,
STOPPING=1 and exit status 0.
Run by /usr/bin/python3 from the repository root; DECONVD_BIN overrides the binary.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("DECONVD_BIN", os.path.join(ROOT, "build", "deconvd")))
TIMEOUT = 20.0  # seconds for any single expected event


class Fail(Exception):
    pass


def recv_until(sock, pred, what, log):
    """Reads notify datagrams until pred(fields) holds; returns every message seen."""
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Fail(f"no {what} within {TIMEOUT:.0f} s; got {seen!r}; log tail:\n{log()}")
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        seen.append(fields)
        if pred(fields):
            return seen


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def main():
    if not os.access(BIN, os.X_OK):
        print(f"test_notify: {BIN} not built (make all)", file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="deconvd-notify.")
    proc = None
    try:
        models = os.path.join(tmp, "models")
        shutil.copytree(os.path.join(ROOT, "config", "models"), models)
        conf = os.path.join(tmp, "deconvd.json")
        with open(conf, "w") as f:
            json.dump({"listen": "127.0.0.1:0", "models_dir": models,
                       "workers": 1, "threads_per_request": 1}, f)
        sock_path = os.path.join(tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        logf = open(os.path.join(tmp, "deconvd.log"), "w+")

        def log_tail():
            logf.flush()
            with open(logf.name) as f:
                return "".join(f.readlines()[-15:])

        env = dict(os.environ, NOTIFY_SOCKET=sock_path)
        proc = subprocess.Popen([BIN, "--config", conf], stdout=logf, stderr=logf, env=env,
                                cwd=tmp)

        seen = recv_until(sock, lambda m: m.get("READY") == "1", "READY=1", log_tail)
        print(f"ok - READY=1 after start ({seen[-1].get('STATUS', '')})")
        port = int(re.search(r"msg=listening .*port=(\d+)", log_tail()).group(1))
        if seen[-1].get("STATUS") != f"serving 3 models on 127.0.0.1:{port}":
            raise Fail(f"STATUS after start: {seen[-1]}")
        print("ok - STATUS=serving 3 models on 127.0.0.1:PORT")
        base = f"http://127.0.0.1:{port}"
        ready = get(base + "/v2/health/ready")
        if ready.get("ready") is not True:
            raise Fail(f"READY=1 sent but /v2/health/ready says {ready}")
        meta = get(base + "/v2/models/up1d")
        if meta.get("name") != "up1d":
            raise Fail(f"READY=1 sent before the models loaded: {meta}")
        print("ok - models are loaded when READY=1 arrives")

        proc.send_signal(signal.SIGHUP)
        seen = recv_until(sock, lambda m: m.get("RELOADING") == "1", "RELOADING=1", log_tail)
        usec = seen[-1].get("MONOTONIC_USEC", "")
        if not usec.isdigit():
            raise Fail(f"RELOADING=1 without MONOTONIC_USEC: {seen[-1]}")
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        if not 0 <= now_usec - int(usec) < TIMEOUT * 1e6:
            raise Fail(f"MONOTONIC_USEC={usec} is not CLOCK_MONOTONIC now ({now_usec})")
        print("ok - RELOADING=1 with MONOTONIC_USEC on SIGHUP")
        recv_until(sock, lambda m: m.get("READY") == "1", "READY=1 after reload", log_tail)
        print("ok - READY=1 after the reload")

        with open(os.path.join(models, "bad.json"), "w") as f:
            f.write("{")
        proc.send_signal(signal.SIGHUP)
        seen = recv_until(sock, lambda m: m.get("READY") == "1", "READY=1 after a reload with "
                          "a broken model", log_tail)
        want = f"serving 3 models, 1 failed (bad) on 127.0.0.1:{port}"
        if seen[-1].get("STATUS") != want:
            raise Fail(f"STATUS after a reload with bad.json broken: {seen[-1]} (want {want!r})")
        print("ok - STATUS names the model that failed: " + want)
        req = urllib.request.Request(base + "/v2/repository/models/up1d/unload", data=b"{}",
                                     method="POST")
        urllib.request.urlopen(req, timeout=5).read()
        want = f"serving 2 models, 1 failed (bad) on 127.0.0.1:{port}"
        seen = recv_until(sock, lambda m: m.get("STATUS") == want, "STATUS after an unload",
                          log_tail)
        if any("READY" in m for m in seen):
            raise Fail(f"READY=1 sent without RELOADING=1: {seen}")
        print("ok - STATUS follows a repository unload, without READY=1: " + want)

        proc.send_signal(signal.SIGTERM)
        recv_until(sock, lambda m: m.get("STOPPING") == "1", "STOPPING=1", log_tail)
        print("ok - STOPPING=1 on SIGTERM")
        try:
            rc = proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise Fail(f"still running {TIMEOUT:.0f} s after SIGTERM; log:\n{log_tail()}")
        proc = None
        if rc != 0:
            raise Fail(f"exit status {rc} after SIGTERM (want 0); log:\n{log_tail()}")
        print("ok - exit status 0 after SIGTERM")
        log = log_tail()
        for line in ("msg=draining", "msg=drained"):
            if line not in log:
                raise Fail(f"no {line} in the log:\n{log}")
        print("ok - log has msg=draining and msg=drained")
        return 0
    except Fail as e:
        print(f"FAIL - {e}")
        return 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
