#!/usr/bin/python3
"""test_batching.py — dynamic batching (model file key "dynamic_batching"), black-box.

A Conv2DTranspose served twice from the same .npy weights, with batching
(`bup`) and without (`bup_off`), and the Keras VAE decoder chain with
batching (`bvae`). 16 client threads fire together, mixing per-item shapes
(two spatial sizes), batch sizes (1-3), JSON and binary answers: every
answer must equal the NumPy reference (tests/numpy_ref.py through
dcvtest.keras_ref) and the same request to `bup_off`; the stats must show
fewer executions than inferences, and exactly as many at one sequential
client; /metrics' batch-size histogram counts the executions. A member
whose client gives up while it waits (the pool held by slow requests of
another model, one worker) does not break the other member's answer. /config shows Triton's max_batch_size and
dynamic_batching; bad keys are load errors naming the problem. Prints
one line per check and "N passed, N failed".
"""
import json
import os
import re
import sys
import threading
import time

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check  # noqa: E402

RNG = np.random.default_rng(1414)
KER = (RNG.standard_normal((3, 3, 2, 3)) * 0.5).astype("<f4")   # k3, 3 -> 2 channels
BIAS = np.array([0.25, -0.5], dtype="<f4")
DATA = os.path.join(T.ROOT, "tests", "data")


def conv_doc(batching=None, batch_input_shape=None):
    cfg = {"name": "bup", "filters": 2, "kernel_size": 3, "strides": 2, "padding": "same",
           "activation": "relu"}
    if batch_input_shape:
        cfg["batch_input_shape"] = batch_input_shape
    doc = {"class_name": "Conv2DTranspose", "config": cfg,
           "weights": {"kernel": "b.kernel.npy", "bias": "b.bias.npy"}}
    if batching is not None:
        doc["dynamic_batching"] = batching
    return doc


def ref(x):
    return T.keras_ref(x, KER, BIAS, [2, 2], "same", activation="relu")


def infer(d, model, x, binary, timeout=30):
    if binary:
        body, hdr = T.binary_request(x.astype("<f4").tobytes(), x.shape, binary_output=True)
        r = requests.post(d.url("/v2/models/%s/infer" % model), data=body, headers=hdr,
                          timeout=timeout)
        if r.status_code != 200:
            return r.status_code, r.text
        head, data = T.parse_binary_response(r)
        return 200, data.reshape(head["outputs"][0]["shape"])
    r = requests.post(d.url("/v2/models/%s/infer" % model), data=json.dumps(T.infer_body(x)),
                      timeout=timeout)
    if r.status_code != 200:
        return r.status_code, r.text
    return 200, T.output_array(r.json())


def stats(d, model):
    s = d.get("/v2/models/%s/stats" % model).json()["model_stats"][0]
    return int(s["inference_count"]), int(s["execution_count"])


def metric(d, name, model):
    m = re.search(r'^%s\{model="%s"\} (\S+)$' % (re.escape(name), model),
                  d.get("/metrics").text, re.M)
    return float(m.group(1)) if m else None


def test_config(d):
    c = d.get("/v2/models/bup/config").json()
    check("config: bup shows max_batch_size 8 and dynamic_batching's delay",
          c.get("max_batch_size") == 8 and c.get("dynamic_batching") ==
          {"max_queue_delay_microseconds": 20000}, json.dumps(c)[:400])
    c = d.get("/v2/models/bup_off/config").json()
    check("config: bup_off shows max_batch_size 0 and no dynamic_batching",
          c.get("max_batch_size") == 0 and "dynamic_batching" not in c, json.dumps(c)[:400])
    c = d.get("/v2/models/bvae/config").json()
    check("config: the chain bvae shows max_batch_size 4", c.get("max_batch_size") == 4,
          json.dumps(c)[:300])


def test_sequential(d):
    i0, e0 = stats(d, "bup")
    ok = True
    for k in range(5):
        x = RNG.standard_normal((1 + k % 2, 5, 5, 3)).astype(np.float32)
        code, y = infer(d, "bup", x, binary=k % 2 == 1)
        ok = ok and code == 200 and T.close(y, ref(x))[0]
    i1, e1 = stats(d, "bup")
    check("one sequential client: every answer equals the NumPy reference", ok)
    check("one sequential client: execution_count == requests (5), inference_count == items (7)",
          e1 - e0 == 5 and i1 - i0 == 7, "executions %d, inferences %d" % (e1 - e0, i1 - i0))


def test_concurrent(d):
    n_threads, rounds = 16, 6
    shapes = [(5, 5), (6, 4)]
    jobs = []
    for t in range(n_threads):
        for r in range(rounds):
            b = 1 + (t + r) % 3
            hw = shapes[(t // 2 + r) % 2]
            x = RNG.standard_normal((b,) + hw + (3,)).astype(np.float32)
            jobs.append((t, x, (t + r) % 2 == 0))
    results = {}
    barrier = threading.Barrier(n_threads)

    def client(t):
        s = requests.Session()
        mine = [(i, x, binary) for i, (tt, x, binary) in enumerate(jobs) if tt == t]
        barrier.wait(timeout=30)
        for i, x, binary in mine:
            if binary:
                body, hdr = T.binary_request(x.tobytes(), x.shape, binary_output=True)
                r = s.post(d.url("/v2/models/bup/infer"), data=body, headers=hdr, timeout=60)
                if r.status_code == 200:
                    head, data = T.parse_binary_response(r)
                    results[i] = data.reshape(head["outputs"][0]["shape"])
                else:
                    results[i] = "%d %s" % (r.status_code, r.text)
            else:
                r = s.post(d.url("/v2/models/bup/infer"), data=json.dumps(T.infer_body(x)),
                           timeout=60)
                results[i] = (T.output_array(r.json()) if r.status_code == 200
                              else "%d %s" % (r.status_code, r.text))

    i0, e0 = stats(d, "bup")
    h0 = metric(d, "deconvd_batch_size_count", "bup") or 0
    threads = [threading.Thread(target=client, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(T.t(120))
    i1, e1 = stats(d, "bup")
    h1 = metric(d, "deconvd_batch_size_count", "bup") or 0
    bad_ref, bad_off = [], []
    for i, (_, x, _) in enumerate(jobs):
        y = results.get(i)
        if not isinstance(y, np.ndarray) or not T.close(y, ref(x))[0]:
            bad_ref.append((i, x.shape, y if not isinstance(y, np.ndarray)
                            else T.close(y, ref(x))[1]))
            continue
        code, y_off = infer(d, "bup_off", x, binary=False)
        if code != 200 or not T.close(y, y_off, rtol=1e-6, atol=1e-6)[0]:
            bad_off.append((i, x.shape))
    items = sum(int(x.shape[0]) for _, x, _ in jobs)
    check("16 concurrent clients, mixed shapes, batches, JSON and binary: all %d answers equal "
          "the NumPy reference" % len(jobs), not bad_ref, bad_ref[:3])
    check("... and equal the same request with batching off", not bad_off, bad_off[:3])
    check("... inference_count grew by the items sent (%d)" % items, i1 - i0 == items,
          i1 - i0)
    check("... execution_count < requests under concurrency (batches ran)",
          0 < e1 - e0 < len(jobs), "%d executions for %d requests" % (e1 - e0, len(jobs)))
    check("... /metrics deconvd_batch_size_count grew by the executions",
          h1 - h0 == e1 - e0, "histogram %g, stats %d" % (h1 - h0, e1 - e0))
    print("# %d requests (%d items) ran in %d executions" % (len(jobs), items, e1 - e0))


def test_chain(d):
    x = np.load(os.path.join(DATA, "vae_decoder", "input.npy")).astype(np.float32)
    want = np.load(os.path.join(DATA, "vae_decoder", "output.npy")).astype(np.float64)
    out = {}
    barrier = threading.Barrier(6)

    def client(t):
        barrier.wait(timeout=30)
        rows = [t % 3] if t < 3 else [0, 1, 2]
        body = {"inputs": [{"name": "input_layer", "shape": [len(rows), 2], "datatype": "FP32",
                            "data": x[rows].ravel().tolist()}]}
        r = requests.post(d.url("/v2/models/bvae/infer"), data=json.dumps(body), timeout=60)
        out[t] = (rows, T.output_array(r.json()) if r.status_code == 200 else r.text)

    i0, e0 = stats(d, "bvae")
    threads = [threading.Thread(target=client, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(T.t(60))
    i1, e1 = stats(d, "bvae")
    bad = []
    for t, (rows, y) in sorted(out.items()):
        ok, why = (T.close(y, want[rows], rtol=1e-5, atol=1e-5) if isinstance(y, np.ndarray)
                   else (False, y))
        if not ok:
            bad.append((t, why))
    check("chain bvae: 6 concurrent requests (batches 1 and 3) equal Keras's output",
          len(out) == 6 and not bad, bad[:3])
    check("chain bvae: inference_count grew by 12 items, executions <= 6",
          i1 - i0 == 12 and 0 < e1 - e0 <= 6, "%d items, %d executions" % (i1 - i0, e1 - e0))


def test_member_leaves():
    """One worker: slow requests of another model hold it while A and B (same
    shape, batching model with a 1 s delay) wait; A's client gives up before
    its answer; B, batched with A or not, is answered right, and so is A's
    request sent again. (The daemon learns that A's client left when it
    answers: libmicrohttpd does not watch a waiting request's socket; the
    stop flag's path, a member answered early, is in tests/unit/test_batch.c.)"""
    rng = np.random.default_rng(7)
    hdoc, hnpy, _, _ = T.heavy_model(rng)
    npy = {"b.kernel.npy": KER, "b.bias.npy": BIAS}
    npy.update(hnpy)
    with T.Daemon(config={"workers": 1, "request_timeout_ms": 60000, "inline_max_work": 0},
                  models={"bslow": conv_doc({"max_batch": 8, "max_queue_delay_us": 1000000}),
                          "heavy": hdoc}, npy=npy, name="deconvd-leave") as d:
        d.start()
        hx = rng.standard_normal((1, 144, 144, 128)).astype(np.float32)

        def heavy():
            body, hdr = T.binary_request(hx.tobytes(), hx.shape, binary_output=True)
            return requests.post(d.url("/v2/models/heavy/infer"), data=body, headers=hdr,
                                 timeout=T.t(60)).status_code

        heavy()                                  # the plan is made on the first
        t0 = time.monotonic()
        heavy()
        took = time.monotonic() - t0
        if took < 0.3:
            T.R.skip("member leaves", "the slow request took only %.3f s here" % took)
            return
        xa = RNG.standard_normal((1, 5, 5, 3)).astype(np.float32)
        xb = RNG.standard_normal((2, 5, 5, 3)).astype(np.float32)
        # A is sent while the first slow request computes, and times out after
        # that one ends (A then waits in its group for B, which waits behind
        # the second slow request) but before the second ends
        def inflight(n):
            m = re.search(r"^deconvd_inflight_requests (\d+)$", d.get("/metrics").text, re.M)
            return m is not None and int(m.group(1)) >= n

        # in this order: H1 computing, then A, H2, B received (each waited for):
        # A waits in its group for B, B behind H2; A's client gives up after H1
        # ends, before H2 does
        h1 = T.Bg(heavy)
        h1.start()
        T.wait_until(lambda: inflight(1), timeout=10, step=0.005)
        a = T.Bg(lambda: infer(d, "bslow", xa, False, timeout=took))
        a.start()
        T.wait_until(lambda: inflight(2), timeout=10, step=0.005)
        h2 = T.Bg(heavy)
        h2.start()
        T.wait_until(lambda: inflight(3), timeout=10, step=0.005)
        b = T.Bg(lambda: infer(d, "bslow", xb, True, timeout=T.t(60)))
        b.start()
        for th in (a, b, h1, h2):
            th.join(T.t(90))
        check("member leaves: A's client gave up before its answer",
              isinstance(a.result, requests.exceptions.Timeout), repr(a.result)[:200])
        ok = (isinstance(b.result, tuple) and b.result[0] == 200 and
              T.close(b.result[1], ref(xb))[0])
        check("member leaves: B equals the NumPy reference", ok,
              repr(b.result)[:300])
        check("member leaves: the slow requests answered 200", h1.result == 200 and
              h2.result == 200, (h1.result, h2.result))
        code, y = infer(d, "bslow", xa, False)
        check("member leaves: A's request sent again is answered right",
              code == 200 and T.close(y, ref(xa))[0])


def test_refusals():
    bad = {
        "zero": ({"max_batch": 0}, "max_batch must be an integer from 1"),
        "huge": ({"max_batch": 100000}, "max_batch must be an integer from 1"),
        "slow": ({"max_batch": 4, "max_queue_delay_us": 2000000}, "max_queue_delay_us must be"),
        "key": ({"max_batch": 4, "preferred_batch_size": [2]}, "unknown key 'preferred_batch_size'"),
        "shape": ("not an object", "dynamic_batching must be an object"),
    }
    models = {n: conv_doc(v) for n, (v, _) in bad.items()}
    models["fixed"] = conv_doc({"max_batch": 4}, batch_input_shape=[2, None, None, 3])
    models["ok"] = conv_doc({"max_batch": 4, "max_queue_delay_us": 100})
    npy = {"b.kernel.npy": KER, "b.bias.npy": BIAS}
    with T.Daemon(config={"strict_readiness": False}, models=models, npy=npy,
                  name="deconvd-refuse") as d:
        d.start()
        idx = {m["name"]: m for m in d.post("/v2/repository/index").json()}
        whys = [(n, why) for n, (_, why) in bad.items()] + [("fixed", "dynamic batch dim")]
        for n, why in whys:
            m = idx.get(n, {})
            check("refused at load: %s (%s)" % (n, why), m.get("state") != "READY" and
                  why in m.get("reason", ""), m)
        check("the valid one loads", idx.get("ok", {}).get("state") == "READY", idx.get("ok"))


def main():
    npy = {"b.kernel.npy": KER, "b.bias.npy": BIAS}
    vae = json.load(open(os.path.join(DATA, "models", "vae_decoder.json")))
    vae["dynamic_batching"] = {"max_batch": 4, "max_queue_delay_us": 20000}
    # inline_max_work 0: these small requests go to the pool (computed on the
    # loop thread, one at a time, they would never meet)
    with T.Daemon(config={"inline_max_work": 0},
                  models={"bup": conv_doc({"max_batch": 8, "max_queue_delay_us": 20000}),
                          "bup_off": conv_doc(), "bvae": vae}, npy=npy) as d:
        import shutil
        shutil.copytree(os.path.join(DATA, "models", "vae_decoder"),
                        os.path.join(d.models_dir, "vae_decoder"))
        d.start()
        T.R.run(test_config, d)
        T.R.run(test_sequential, d)
        T.R.run(test_concurrent, d)
        T.R.run(test_chain, d)
    T.R.run(test_member_leaves)
    T.R.run(test_refusals)


if __name__ == "__main__":
    T.main_guard(main)
