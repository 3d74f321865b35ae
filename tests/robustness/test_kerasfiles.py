#!/usr/bin/python3
"""Hostile Keras files against the daemon (issue 13).

The catalogue is tests/robustness/make_hostile_keras.py (truncated zips,
zip bombs, broken JSON, HDF5 files of the wrong types, shapes, links and
attribute sizes, pointer files, non-regular entries). A daemon (release
build: the address-space limit of the parsing child and ASan's shadow
memory do not mix) serves Keras's own good.keras throughout, while:

- one at a time: each hostile file is dropped into the models directory
  and a SIGHUP reloads it: a load error in the repository index naming the
  file and matching the case's cause, and a log line saying so; the two
  controls (the generator's own files without a defect) load and answer
  like Keras; good.keras answers like Keras after every case;
- all at once: every file together, one reload; the same verdicts;
- replacing: a serving model's file (gen.keras, genh5.h5) is replaced by
  hostile files, SIGHUP: the load fails naming the file, the previous
  version keeps serving (same version number, answers like Keras);
- throughout: a separate client's /v2/health/live p99 below 50 ms, every
  reload finishing within the kfile timeout (+ slack), no child process of
  the daemon left behind (/proc), the daemon's RSS back near its idle
  figure once the hostile files are gone, exit 0 on SIGTERM.

Environment: KFILES_ONLY=case,case (a subset of the catalogue),
KFILES_SMALL=1 (leave out the big cases: bombs, giant members/attributes).
"""
import json
import os
import re
import shutil
import signal
import sys
import time

import numpy as np

import rlib as L

T = L.T
check = L.check

sys.path.insert(0, L.HERE)
import make_hostile_keras as H  # noqa: E402  (path set just above)

DATA = os.path.join(L.ROOT, "tests", "data", "keras", "hostile")
X = np.load(os.path.join(DATA, "input.npy"))
Y = np.load(os.path.join(DATA, "output.npy"))
RTOL = 1e-5

KFILE_TIMEOUT_S = 30.0           # dcv_kfile_limits.timeout_ms's default
RELOAD_SLACK_S = 15.0
RSS_SLACK_KB = 64 * 1024         # "back near idle"
KFILE_CONFIG = {}                # daemon config keys for the kfile limits: defaults

READY_LINE = b" msg=ready "
SMALL = os.environ.get("KFILES_SMALL", "") not in ("", "0")
ONLY = [s for s in os.environ.get("KFILES_ONLY", "").split(",") if s]

# figures collected across the phases
SLOWEST = {"s": 0.0, "what": ""}


# ------------------------------------------------------------------ helpers

def reloads_done(d):
    with open(d.stderr_path, "rb") as f:
        return f.read().count(READY_LINE)


def reload(d, what):
    """SIGHUP and wait for the reload's msg=ready (bounded): (done, seconds)."""
    n = reloads_done(d)
    t0 = time.monotonic()
    d.signal(signal.SIGHUP)
    done = T.wait_until(lambda: reloads_done(d) > n, KFILE_TIMEOUT_S * 4 + RELOAD_SLACK_S, 0.02)
    dt = time.monotonic() - t0
    if dt > SLOWEST["s"]:
        SLOWEST.update(s=dt, what=what)
    return done, dt


def index(d):
    return {m["name"]: m for m in d.post("/v2/repository/index", timeout=60).json()}


def children(pid):
    """[(pid, state)] of the processes whose parent is pid."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            out.append((int(p), fields[0]))
    return out


def no_children(d, what):
    """No child of the daemon left (zombie or not), within 3 s of a reload."""
    ok = T.wait_until(lambda: not children(d.proc.pid), 3.0, 0.05)
    check("%s: no child process of the daemon left (/proc)" % what, ok, children(d.proc.pid))


def input_name(d, model):
    r = d.get("/v2/models/%s" % model)
    try:
        return r.json()["inputs"][0]["name"]
    except (ValueError, KeyError, IndexError):
        return "input"


def serves_like_keras(d, model):
    """(ok, detail): model answers input.npy with Keras's output.npy."""
    try:
        r = d.post("/v2/models/%s/infer" % model,
                   T.infer_body(X, name=input_name(d, model)), timeout=30)
    except Exception as e:             # noqa: BLE001
        return False, repr(e)
    if r.status_code != 200:
        return False, "%s %s" % (r.status_code, r.text[:300])
    got = T.output_array(r.json())
    if got.shape != Y.shape:
        return False, "shape %s, Keras %s" % (got.shape, Y.shape)
    err = np.max(np.abs(got - Y) / np.maximum(np.abs(Y), 1e-3))
    return err <= RTOL, "max relative error %.3g" % err


def load_failed_logged(d, name, fname):
    """The log's msg="model load failed" line for model `name`, naming the file."""
    pat = re.compile(rb'msg="?model load failed"? model=%s ' % re.escape(name.encode()))
    for ln in L.log_lines(d):
        if pat.search(ln) and fname.encode() in ln:
            return True
    return False


def verdict(d, idx, c, stem=None, fname=None, serving_prev=False):
    """One check per case: a load error naming the file and the cause."""
    stem = stem or c["file"].rsplit(".", 1)[0]
    fname = fname or c["file"]
    m = idx.get(stem, {})
    reason = m.get("reason", "")
    cause_ok = not c["cause"] or re.search(c["cause"], reason, re.I) is not None
    want_state = "READY" if serving_prev else "UNAVAILABLE"
    print("#   %s: %s %s" % (stem, m.get("state"), reason[:240]), flush=True)
    if c.get("may_load") and not reason and m.get("state") == "READY":
        ok, det = serves_like_keras(d, stem)
        cfg = d.get("/v2/models/%s/config" % stem)
        try:
            json.loads(cfg.content.decode("utf-8"))
            cfg_ok = cfg.status_code == 200
        except (UnicodeDecodeError, ValueError):
            cfg_ok = False
        check("%s: %s → loads, answers like Keras (%s), /config is UTF-8 JSON"
              % (c["name"], c["what"], det), ok and cfg_ok, (m, cfg.status_code, cfg.content[:300]))
        return
    logged = load_failed_logged(d, stem, fname)
    check("%s: %s → a load error naming %s and its cause%s" %
          (c["name"], c["what"], fname, " (previous version serving)" if serving_prev else ""),
          m.get("state") == want_state and fname in reason and cause_ok and logged,
          {"entry": m, "cause": c["cause"], "cause matched": cause_ok, "logged": logged})


def stage(tmp):
    """Generates the catalogue into tmp/stage; returns (stage dir, cases)."""
    sdir = os.path.join(tmp, "stage")
    return sdir, H.write(sdir, small=SMALL, special=True, only=ONLY or None)


def dependencies(sdir, c):
    """Files a case needs beside it (a pointer's target, an external link's
    target file): names in the stage directory."""
    deps = []
    if c["file"].endswith(".json"):
        try:
            with open(os.path.join(sdir, c["file"])) as f:
                target = json.load(f).get("file")
        except (OSError, ValueError, AttributeError):
            target = None
        if isinstance(target, str) and "/" not in target and target != c["file"] and \
                os.path.exists(os.path.join(sdir, target)):
            deps.append(target)
    return deps


def move(src, dst):
    os.replace(src, dst)


def copy_in(sdir, mdir, name):
    """Copies a regular file of the stage in; False when there is none
    (a control already in place)."""
    src = os.path.join(sdir, name)
    if os.path.islink(src) or not os.path.isfile(src):
        return False
    shutil.copyfile(src, os.path.join(mdir, name))
    return True


def setup_models(d):
    shutil.copyfile(os.path.join(DATA, "model.keras"), os.path.join(d.models_dir, "good.keras"))


def is_control(c):
    return c["name"].startswith("ctl_")


# ------------------------------------------------------------------ phases

def idle_rss(d):
    for _ in range(5):
        serves_like_keras(d, "good")
    time.sleep(0.3)
    return L.rss_kb(d.proc.pid)


def rss_back(d, rss0, what):
    """The daemon's RSS back within RSS_SLACK_KB of its idle figure."""
    time.sleep(0.5)
    rss1 = L.rss_kb(d.proc.pid)
    L.figure("%s: daemon RSS idle / now (MiB)" % what, "%.1f / %.1f"
             % (rss0 / 1024.0, (rss1 or 0) / 1024.0))
    check("%s: daemon RSS %.1f MiB, idle %.1f MiB (slack %d MiB)"
          % (what, (rss1 or 0) / 1024.0, rss0 / 1024.0, RSS_SLACK_KB // 1024),
          rss1 is not None and rss1 <= rss0 + RSS_SLACK_KB)


def test_one_at_a_time():
    L.use_binary(L.release_binary())
    with L.RDaemon(config=KFILE_CONFIG, name="kerasfiles one-at-a-time daemon") as d:
        setup_models(d)
        d.start(timeout=60)
        ok, det = serves_like_keras(d, "good")
        check("one at a time: Keras's own good.keras loads and answers like Keras (%s)" % det,
              ok, d.tail())
        rss0 = idle_rss(d)
        sdir, cat = stage(d.tmp)
        for extra in os.listdir(sdir):              # an external link's target file
            if extra.endswith(".data"):
                copy_in(sdir, d.models_dir, extra)
        mdir = d.models_dir
        with L.HealthProbe(d.port) as probe:
            for c in cat:
                deps = [dep for dep in dependencies(sdir, c) if copy_in(sdir, mdir, dep)]
                move(os.path.join(sdir, c["file"]), os.path.join(mdir, c["file"]))
                done, dt = reload(d, c["name"])
                idx = index(d)
                if is_control(c):
                    stem = c["file"].rsplit(".", 1)[0]
                    ok, det = serves_like_keras(d, stem)
                    check("%s: %s → READY and answers like Keras (%s)" % (c["name"], c["what"],
                                                                          det),
                          done and idx.get(stem, {}).get("state") == "READY" and ok,
                          (idx.get(stem), d.tail(3)))
                else:
                    verdict(d, idx, c)
                ok, det = serves_like_keras(d, "good")
                check("%s: reload done in %.1fs (< %.0fs) and good.keras still answers like "
                      "Keras (%s)" % (c["name"], dt, KFILE_TIMEOUT_S + RELOAD_SLACK_S, det),
                      done and dt < KFILE_TIMEOUT_S + RELOAD_SLACK_S and ok, d.tail(3))
                no_children(d, c["name"])
                if not is_control(c):                # the controls stay: pointers need them
                    move(os.path.join(mdir, c["file"]), os.path.join(sdir, c["file"]))
                for dep in deps:
                    os.unlink(os.path.join(mdir, dep))
            reload(d, "cleanup")
        probe.verdict("one at a time (%d files)" % len(cat))
        rss_back(d, rss0, "one at a time")


def test_all_at_once():
    L.use_binary(L.release_binary())
    with L.RDaemon(config=KFILE_CONFIG, name="kerasfiles all-at-once daemon") as d:
        setup_models(d)
        d.start(timeout=60)
        rss0 = idle_rss(d)
        sdir, cat = stage(d.tmp)
        names = [c["file"] for c in cat] + [f for f in os.listdir(sdir) if f.endswith(".data")]
        with L.HealthProbe(d.port) as probe:
            for f in names:
                move(os.path.join(sdir, f), os.path.join(d.models_dir, f))
            done, dt = reload(d, "all at once")
            L.figure("all at once: reload of %d hostile files (s)" % len(cat), "%.1f" % dt)
            check("all at once: the reload with %d files completes in %.1fs" % (len(cat), dt),
                  done, d.tail())
            idx = index(d)
            for c in cat:
                if is_control(c):
                    stem = c["file"].rsplit(".", 1)[0]
                    check("all at once: %s READY" % c["name"],
                          idx.get(stem, {}).get("state") == "READY", idx.get(stem))
                else:
                    verdict(d, idx, c)
            ok, det = serves_like_keras(d, "good")
            check("all at once: good.keras answers like Keras (%s)" % det, ok, d.tail())
            no_children(d, "all at once")
            done2, dt2 = reload(d, "all at once, again")
            check("all at once: a second reload with the same files completes (%.1fs) and "
                  "good.keras serves" % dt2, done2 and serves_like_keras(d, "good")[0], d.tail())
            for f in names:
                p = os.path.join(d.models_dir, f)
                if os.path.isdir(p) and not os.path.islink(p):
                    os.rmdir(p)
                else:
                    os.unlink(p)
            reload(d, "all removed")
        probe.verdict("all at once (%d files)" % len(cat))
        rss_back(d, rss0, "all at once, after removal")
        no_children(d, "all at once, at the end")


def test_replace():
    L.use_binary(L.release_binary())
    with L.RDaemon(config=KFILE_CONFIG, name="kerasfiles replace daemon") as d:
        shutil.copyfile(os.path.join(DATA, "model.keras"),
                        os.path.join(d.models_dir, "gen.keras"))
        shutil.copyfile(os.path.join(DATA, "model.h5"), os.path.join(d.models_dir, "genh5.h5"))
        d.start(timeout=60)
        sdir, cat = stage(d.tmp)
        cases = [c for c in cat if not is_control(c) and not c["special"] and
                 not c["may_load"] and c["file"].endswith((".keras", ".h5")) and
                 os.path.isfile(os.path.join(sdir, c["file"]))]
        with L.HealthProbe(d.port) as probe:
            for c in cases:
                target = "gen.keras" if c["file"].endswith(".keras") else "genh5.h5"
                stem = target.rsplit(".", 1)[0]
                v0 = index(d).get(stem, {}).get("version")
                tmpf = os.path.join(d.models_dir, "." + target + ".tmp")
                shutil.copyfile(os.path.join(sdir, c["file"]), tmpf)
                os.replace(tmpf, os.path.join(d.models_dir, target))
                reload(d, "replace " + c["name"])
                idx = index(d)
                verdict(d, idx, c, stem=stem, fname=target, serving_prev=True)
                ok, det = serves_like_keras(d, stem)
                v1 = idx.get(stem, {}).get("version")
                check("replace, %s: %s keeps serving version %s (now %s) like Keras (%s)"
                      % (c["name"], target, v0, v1, det), ok and v0 is not None and v0 == v1,
                      idx.get(stem))
                no_children(d, "replace, " + c["name"])
                shutil.copyfile(os.path.join(DATA, "model.keras" if target == "gen.keras"
                                             else "model.h5"), tmpf)
                os.replace(tmpf, os.path.join(d.models_dir, target))
                reload(d, "restore " + target)
                v2 = index(d).get(stem, {}).get("version")
                check("replace, %s: the good %s restored loads as a new version (%s → %s)"
                      % (c["name"], target, v1, v2), v1 is not None and v2 is not None and
                      int(v2) == int(v1) + 1 and serves_like_keras(d, stem)[0], index(d).get(stem))
        probe.verdict("replace (%d files)" % len(cases))


def main():
    only = os.environ.get("ROBUST_ONLY")
    t0 = time.monotonic()
    for t in (test_one_at_a_time, test_all_at_once, test_replace):
        if not only or only == t.__name__:
            L.R.run(t)
    L.figure("slowest reload (s)", "%.1f (%s)" % (SLOWEST["s"], SLOWEST["what"]))
    L.figure("suite time (s)", "%.0f" % (time.monotonic() - t0))


if __name__ == "__main__":
    L.main_guard(main, L.release_binary(), 1500)
