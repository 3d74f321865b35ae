#!/usr/bin/python3
"""Answers are JSON, and request trees are bounded (issue 11), release build.

- A model whose output overflows float32 (weights 1e30 times inputs 1e30 in
  a Conv1DTranspose, both within float32's range): the KServe JSON, TF
  Serving and /v2/ops/conv1d_transpose answers must parse with a strict JSON
  parser (NaN/Infinity refused) and be a 400 error naming the first
  non-finite output by flat and multi-dimensional index (worked out from the
  NumPy reference); the KServe binary answer of the same request carries the
  Infinity bit pattern where the reference overflows, the reference's values
  elsewhere.
- Non-numeric arrays in a request ({"parameters": {"junk": [[],[],...]}})
  would each become a JSON tree node: two ~60 MB such requests at once are
  refused with 413 naming max_json_nodes and the number of values, while
  /v2/health/live keeps answering; the daemon's RSS peak is printed. So
  are 20 MB of numeric arrays nested 400 deep in objects (each one an
  array the scanner would try to read whole). The bodies the loop thread
  parses (shape endpoints) are bounded alike.

Run: DECONVD_BIN=build/deconvd tests/robustness/run answers
"""
import json
import threading
import time

import numpy as np
import requests

import rlib as L

T = L.T
check = L.check

FLT_MAX = float(np.finfo(np.float32).max)
BIG = 1e30                       # a float32; BIG * BIG is not
JUNK_BYTES = 60_000_000          # per request, under the default max_body_bytes (64 MiB)
MAX_JSON_NODES = 65536           # the default

# Conv1DTranspose, kernel 3, stride 2, SAME, 2 filters: every weight 1e30
KERNEL = np.full((3, 2, 1), BIG, dtype="<f4")
BIAS = np.zeros(2, dtype="<f4")
X = np.array([[[1.0], [1.0], [BIG], [1.0]]], dtype=np.float32)      # (1, 4, 1)


def strict_json(raw):
    """json.loads that refuses NaN, Infinity and -Infinity (as JSON.parse does)."""
    def refuse(name):
        raise ValueError("%s is not JSON" % name)
    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


def strict_error(r):
    """(True, message) for a 400 whose body is a strict-JSON {"error"}, else
    (False, why)."""
    try:
        body = strict_json(r.content)
    except (ValueError, UnicodeDecodeError) as e:
        return False, "%s %s: %r" % (r.status_code, e, r.content[:200])
    if r.status_code != 400 or not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return False, "%s %r" % (r.status_code, r.content[:300])
    return True, body["error"]


def first_overflow(ref):
    """Flat and multi-dimensional index of the first value float32 cannot hold."""
    flat = int(np.argmax(np.abs(ref.ravel()) > FLT_MAX))
    return flat, "[%s]" % ",".join(str(int(i)) for i in np.unravel_index(flat, ref.shape))


def test_non_finite_answers(d):
    ref = T.keras_ref(X, KERNEL.astype(np.float64), BIAS, [2], "same")   # float64: no overflow
    check("reference: some outputs overflow float32, not all",
          0 < int(np.sum(np.abs(ref) > FLT_MAX)) < ref.size, ref.ravel())
    flat, index = first_overflow(ref)
    want = "output value %d (index %s) is Infinity" % (flat, index)

    r = d.post("/v2/models/ovf/infer", T.infer_body(X))
    ok, msg = strict_error(r)
    check("overflow: KServe JSON answer is a strict-JSON 400 error", ok, msg)
    check("overflow: KServe error names %r and points to binary output" % want,
          ok and want in msg and '"binary_data_output": true' in msg, msg)

    r = d.post("/v1/models/ovf:predict", {"instances": X.tolist()})
    ok, msg = strict_error(r)
    check("overflow: TF Serving answer is a strict-JSON 400 error", ok, msg)
    check("overflow: TF Serving error names %r, says JSON cannot carry it" % want,
          ok and want in msg and "JSON cannot carry" in msg, msg)

    body = {"input": X.tolist(), "filters": KERNEL.tolist(), "output_shape": list(ref.shape),
            "strides": 2, "padding": "SAME"}
    r = d.post("/v2/ops/conv1d_transpose", body)
    ok, msg = strict_error(r)
    check("overflow: /v2/ops/conv1d_transpose answer is a strict-JSON 400 error", ok, msg)
    check("overflow: ops error names %r, says JSON cannot carry it" % want,
          ok and want in msg and "JSON cannot carry" in msg, msg)

    r = d.post("/v2/models/ovf/infer", T.infer_body(X, binary_output=True))
    ok, why = r.status_code == 200, "%s %r" % (r.status_code, r.content[:200])
    if ok:
        head, got = T.parse_binary_response(r)
        over = np.abs(ref.ravel()) > FLT_MAX
        bits = got.view("<u4") if got is not None else np.zeros(0, "<u4")
        ok = got is not None and got.size == ref.size and bool(np.all(bits[over] == 0x7f800000))
        fin_ok, fin_why = T.close(got[~over], ref.ravel()[~over]) if ok else (False, "")
        ok = ok and fin_ok
        why = "bits %s; finite values: %s" % ([hex(b) for b in bits[:8]], fin_why)
    check("overflow: KServe binary answer carries 0x7f800000 (Infinity) where the reference "
          "overflows and its values elsewhere", ok, why)
    T.answers_inference(d, "up1d", [[[1, 2]]])


def junk_request():
    """A valid small KServe request with parameters.junk = [[],[],...] of
    about JUNK_BYTES, and the number of JSON values it holds (counted by
    Python on the request without the junk, plus one per junk array)."""
    head = json.dumps(T.infer_body(np.array([[[1, 2], [3, 4]]], dtype=np.float32)))
    assert head.endswith("}")
    k = (JUNK_BYTES - len(head)) // 3
    body = (head[:-1] + ',"parameters":{"junk":[' + "[]," * (k - 1) + "[]]}}").encode()

    def count(v):
        if isinstance(v, dict):
            return 1 + sum(count(x) for x in v.values())
        if isinstance(v, list):
            return 1 + sum(count(x) for x in v)
        return 1
    values = count(json.loads(head[:-1] + ',"parameters":{"junk":[]}}')) + k
    return body, values


def test_junk_arrays(d):
    body, values = junk_request()
    pid = d.proc.pid
    idle_kb = L.rss_kb(pid)
    stop = threading.Event()
    rss = []

    def sample_rss():
        while not stop.is_set():
            v = L.rss_kb(pid)
            if v:
                rss.append(v)
            time.sleep(0.005)

    answers = [None, None]

    def send(i):
        t0 = time.monotonic()
        try:
            r = requests.post(d.url("/v2/models/up1d/infer"), data=body, timeout=120)
            answers[i] = (r, time.monotonic() - t0)
        except requests.RequestException as e:
            answers[i] = (e, time.monotonic() - t0)

    bg = [threading.Thread(target=sample_rss)]
    senders = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    with L.HealthProbe(d.port) as hp:
        for th in bg + senders:
            th.start()
        for th in senders:
            th.join(150)
        time.sleep(0.2)
    stop.set()
    for th in bg:
        th.join(15)

    want = "holds %d values, above max_json_nodes (%d)" % (values, MAX_JSON_NODES)
    for i, (r, secs) in enumerate(answers):
        ok = isinstance(r, requests.Response) and L.is_json_error(r, (413,))
        msg = r.json()["error"] if ok else (r if not isinstance(r, requests.Response)
                                            else "%s %r" % (r.status_code, r.content[:200]))
        check("junk arrays, request %d (%.0f MB): 413 naming max_json_nodes and %d values"
              % (i + 1, len(body) / 1e6, values), ok and want in msg, msg)
        L.figure("junk arrays: request %d answered in (s)" % (i + 1), "%.2f" % secs)
        check("junk arrays, request %d: answered within 30 s (%.1f s)" % (i + 1, secs),
              secs < 30, "")
    hp.verdict("junk arrays")
    peak = max(rss) if rss else 0
    L.figure("junk arrays: RSS idle (MB)", "%.0f" % (idle_kb / 1024))
    L.figure("junk arrays: RSS peak (MB)", "%.0f" % (peak / 1024))
    # the bodies themselves are buffered (2 x 60 MB); their trees are not built
    check("junk arrays: RSS peak %.0f MB within idle + 3 x the bodies (%.0f MB)"
          % (peak / 1024, (idle_kb + 3 * 2 * len(body) / 1024) / 1024),
          0 < peak <= idle_kb + 3 * 2 * len(body) / 1024, "")
    # freed bodies stay in the buffer cache at most 10 s, freed heap is trimmed
    after = []
    back = T.wait_until(lambda: after.append(L.rss_kb(pid) or 0) or
                        after[-1] <= idle_kb + 64 * 1024, timeout=25, step=0.5)
    L.figure("junk arrays: RSS after (MB)", "%.0f" % (after[-1] / 1024 if after else -1))
    check("junk arrays: RSS back within 64 MB of idle (%.0f -> %.0f MB)"
          % (idle_kb / 1024, after[-1] / 1024 if after else -1), back, after[-5:])
    T.answers_inference(d, "up1d", [[[1, 2]]])


def test_nested_numeric_arrays(d):
    """Arrays of numbers nested in objects in arrays ({"a":[1,{"a":[1,...,
    400 deep, repeated to 20 MB): each "a" is an array the scanner tries to
    read whole; past max_json_nodes values it stops trying."""
    head = json.dumps(T.infer_body(np.array([[[1, 2], [3, 4]]], dtype=np.float32)))
    one = '{"a":[1,' * 400 + "2" + "]}" * 400
    body = (head[:-1] + ',"parameters":{"x":[' + ",".join([one] * (20_000_000 // len(one)))
            + "]}}").encode()
    t0 = time.monotonic()
    r = d.post("/v2/models/up1d/infer", data=body, timeout=120)
    secs = time.monotonic() - t0
    ok = L.is_json_error(r, (413,))
    msg = r.json()["error"] if ok else "%s %r" % (r.status_code, r.content[:200])
    check("nested numeric arrays (%.0f MB): 413 naming max_json_nodes" % (len(body) / 1e6),
          ok and "above max_json_nodes (%d)" % MAX_JSON_NODES in msg, msg)
    L.figure("nested numeric arrays (20 MB): answered in (s)", "%.2f" % secs)


def test_loop_thread_bodies(d):
    """The bodies the loop thread parses (shape endpoints, shared-memory
    registration) are bounded by the same key: 1 MB of junk arrays, 413."""
    junk = ',"junk":[' + "[]," * 333332 + "[]]}"
    cases = [("/v2/models/up1d/shape", '{"input_shape":[1,4,2]' + junk),
             ("/v2/shape", '{"class_name":"Conv1DTranspose","config":{"filters":2,'
                           '"kernel_size":3,"strides":2},"input_shape":[1,4,2]' + junk)]
    for path, body in cases:
        r = d.post(path, data=body.encode())
        ok = L.is_json_error(r, (413,))
        msg = r.json()["error"] if ok else "%s %r" % (r.status_code, r.content[:200])
        check("junk arrays on the loop thread (%s, 1 MB): 413 naming max_json_nodes" % path,
              ok and "above max_json_nodes (%d)" % MAX_JSON_NODES in msg, msg)
        ok = d.post(path, data=body[:body.index(',"junk"')].encode() + b"}").status_code == 200
        check("the same request without the junk (%s): 200" % path, ok, "")


def main():
    npy = {"ovf.kernel.npy": KERNEL, "ovf.bias.npy": BIAS}
    models = {"ovf": T.conv1d_doc("ovf", "ovf.kernel.npy", "ovf.bias.npy")}
    with L.RDaemon(config={"workers": 2, "threads_per_request": 1}, models=models, npy=npy,
                   shipped=["up1d"], name="answers daemon") as d:
        d.start()
        L.R.run(test_non_finite_answers, d)
        L.R.run(test_junk_arrays, d)
        L.R.run(test_nested_numeric_arrays, d)
        L.R.run(test_loop_thread_bodies, d)


if __name__ == "__main__":
    L.main_guard(main, L.release_binary(), 300)
