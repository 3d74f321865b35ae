#!/usr/bin/python3
"""test_split.py — the split of the cores (src/tuner.c), black-box.

A Conv2DTranspose big enough for the worker pool (64 -> 64 channels, 3x3,
stride 2, 16x16 input: 9.4M multiply-adds) served by the default daemon
(the tuner) and by a fixed one (threads_per_request 1). Checks that
/v2/models/{m}/stats shows the split (deconvd_split: state, cores,
jobs_at_once x threads_per_job = cores, the candidates), that concurrent
binary clients get exact answers (NumPy reference) while the tuner probes
and after it settles, that the tuner measured every candidate under that
load, that one client alone still gets every core, and that a fixed
threads_per_request shows the tuner off. Prints "N passed, N failed".
"""
import json
import os
import sys
import threading

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check  # noqa: E402

RNG = np.random.default_rng(1414)
C, K, SIDE = 64, 3, 16
CLIENTS = 4


def model():
    ker = (RNG.standard_normal((K, K, C, C)) * 0.05).astype("<f4")
    b = (RNG.standard_normal(C) * 0.1).astype("<f4")
    doc = {"class_name": "Conv2DTranspose",
           "config": {"name": "big", "filters": C, "kernel_size": K, "strides": 2,
                      "padding": "same", "activation": "linear"},
           "weights": {"kernel": "big.kernel.npy", "bias": "big.bias.npy"}}
    return doc, {"big.kernel.npy": ker, "big.bias.npy": b}, ker, b


def split(d):
    r = d.get("/v2/models/big/stats")
    return r.json()["model_stats"][0].get("deconvd_split") if r.status_code == 200 else None


def infer(d, x, session=None):
    body, hdr = T.binary_request(x.tobytes(), x.shape, binary_output=True)
    r = (session or requests).post(d.url("/v2/models/big/infer"), data=body,
                                   headers=d.headers(hdr), timeout=T.t(30))
    if r.status_code != 200:
        return None, "%s %s" % (r.status_code, r.text[:200])
    head, y = T.parse_binary_response(r)
    return y.reshape(head["outputs"][0]["shape"]), ""


def test_shape_of_the_stats(d):
    s = split(d)
    cores = os.cpu_count() or 1
    check("stats: deconvd_split present", isinstance(s, dict), json.dumps(s))
    if not isinstance(s, dict):
        return
    check("split: cores = the machine's (%d)" % cores, s.get("cores") == cores, json.dumps(s))
    check("split: idle before any load, one job with every core",
          s.get("state") == "idle" and s.get("jobs_at_once") == 1 and
          s.get("threads_per_job") == cores, json.dumps(s))
    cands = s.get("candidates") or []
    check("split: candidates divide the cores, 1 and one job per core among them",
          all(cores % c["jobs_at_once"] == 0 and
              c["jobs_at_once"] * c["threads_per_job"] == cores for c in cands) and
          cands[0]["jobs_at_once"] == 1 and cands[-1]["jobs_at_once"] == cores,
          json.dumps(cands))
    check("split: nothing measured yet (cpu_ms_per_job null)",
          all(c["cpu_ms_per_job"] is None for c in cands), json.dumps(cands))


def load(d, xs, refs, rounds):
    """CLIENTS threads, each `rounds` requests over xs; returns the failures."""
    bad = []
    lock = threading.Lock()

    def client(i):
        s = requests.Session()
        for n in range(rounds):
            j = (i + n) % len(xs)
            y, err = infer(d, xs[j], s)
            ok, detail = (False, err) if y is None else T.close(y, refs[j])
            if not ok:
                with lock:
                    bad.append("client %d request %d: %s" % (i, n, detail))
    th = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for x in th:
        x.start()
    for x in th:
        x.join(T.t(120))
    return bad


def test_concurrent_exact_and_probed(d, xs, refs):
    cores = os.cpu_count() or 1
    bad = load(d, xs, refs, 40)
    check("%d concurrent binary clients: every answer = NumPy's" % CLIENTS, not bad,
          "; ".join(bad[:3]))
    if cores < 2:
        T.R.skip("the tuner probes candidates", "one core: one candidate, nothing to probe")
        return
    if T.VALGRIND:
        T.R.skip("the tuner probes candidates", "valgrind runs one thread at a time")
        return
    # the first probe needs a warm-up round and three rounds of 17 jobs per
    # candidate under sustained load: keep the load on until it is done
    more = []
    s = T.wait_until(lambda: (split(d) or {}).get("probes", 0) >= 1 or
                     more.extend(load(d, xs, refs, 20)), timeout=60, step=0)
    s = split(d)
    check("under load: the tuner finished a probe", s and s.get("probes", 0) >= 1, json.dumps(s))
    check("answers during the probe = NumPy's", not more, "; ".join(more[:3]))
    if not s:
        return
    check("under load: a split of the cores in force",
          s["jobs_at_once"] * s["threads_per_job"] == cores and
          s["state"] in ("settled", "probing"), json.dumps(s))
    check("every candidate measured (cpu_ms_per_job > 0)",
          all((c["cpu_ms_per_job"] or 0) > 0 for c in s["candidates"]), json.dumps(s))
    chosen = [c for c in s["candidates"] if c["jobs_at_once"] == s["jobs_at_once"]]
    cheapest = min(c["cpu_ms_per_job"] for c in s["candidates"])
    check("the choice is within the near-tie band of the cheapest (or the previous one)",
          s["state"] != "settled" or
          (chosen and chosen[0]["cpu_ms_per_job"] <= cheapest * 1.04) or s["probes"] > 1,
          json.dumps(s))


def test_alone_exact(d, xs, refs):
    ok_all, detail = True, ""
    for j in range(len(xs)):
        y, err = infer(d, xs[j])
        ok, det = (False, err) if y is None else T.close(y, refs[j])
        if not ok:
            ok_all, detail = False, det
    check("one client after the load: answers = NumPy's", ok_all, detail)


def main():
    doc, npy, ker, b = model()
    xs = [RNG.uniform(-1, 1, (1, SIDE, SIDE, C)).astype("<f4") for _ in range(6)]
    refs = [T.keras_ref(x, ker, b, [2, 2], "same") for x in xs]
    with T.Daemon(models={"big": doc}, npy=npy, name="split default") as d:
        d.start()
        T.R.run(test_shape_of_the_stats, d)
        T.R.run(test_concurrent_exact_and_probed, d, xs, refs)
        T.R.run(test_alone_exact, d, xs, refs)
    with T.Daemon(config={"workers": 2, "threads_per_request": 1}, models={"big": doc}, npy=npy,
                  name="split fixed") as d:
        d.start()
        y, err = infer(d, xs[0])
        ok, detail = (False, err) if y is None else T.close(y, refs[0])
        check("fixed 2x1: answer = NumPy's", ok, detail)
        s = split(d) or {}
        check("fixed threads_per_request: the tuner is off", s.get("state") == "off", json.dumps(s))


if __name__ == "__main__":
    T.main_guard(main)
