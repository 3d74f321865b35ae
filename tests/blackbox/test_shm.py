#!/usr/bin/python3
"""test_shm.py — Triton's system shared memory extension, black-box.

Objects are created the way a local client does (a file in /dev/shm, i.e.
shm_open, mapped with mmap); outputs are read back from them and compared
with the NumPy reference (tests/numpy_ref.py via dcvtest). One daemon has the
extension off (the default: every endpoint and parameter is a 400 saying how
to enable it); one has it on, behind a bearer token, and covers register /
status / unregister, every mix of body and shared-memory tensors, bad
requests, a truncated object, the region cap, the CUDA endpoints, metrics
and an unregister while a request holds the regions. Prints one line per
check and "N passed, N failed".
"""
import json
import mmap
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check, close  # noqa: E402

RNG = np.random.default_rng(4321)
TOKEN = "shm-t0ken"
PAGE = mmap.PAGESIZE


class Obj:
    """A POSIX shared-memory object (/dev/shm/<name>) mapped here."""
    seq = 0

    def __init__(self, size, tag="o"):
        Obj.seq += 1
        self.name = "dcvtest-shm-%d-%d-%s" % (os.getpid(), Obj.seq, tag)
        self.key = "/" + self.name
        self.path = os.path.join("/dev/shm", self.name)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(self.fd, size)
        self.size = size
        self.mm = mmap.mmap(self.fd, size)

    def put(self, arr, offset=0):
        b = np.ascontiguousarray(arr).tobytes()
        self.mm[offset:offset + len(b)] = b

    def get(self, dtype, count, offset=0):
        return np.frombuffer(self.mm, dtype=dtype, count=count, offset=offset).copy()

    def fill(self, byte):
        self.mm[:] = bytes([byte]) * self.size

    def close(self):
        try:
            self.mm.close()
        except (BufferError, ValueError):
            pass
        os.close(self.fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def rnd(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def shm_params(region, size, offset=None):
    p = {"shared_memory_region": region, "shared_memory_byte_size": size}
    if offset is not None:
        p["shared_memory_offset"] = offset
    return p


def shm_input(shape, region, size, offset=None, datatype="FP32"):
    return {"name": "input", "shape": list(shape), "datatype": datatype,
            "parameters": shm_params(region, size, offset)}


def json_input(x):
    return {"name": "input", "shape": list(x.shape), "datatype": "FP32",
            "data": x.ravel().tolist()}


def shm_output(region, size, offset=None):
    return [{"name": "output", "parameters": shm_params(region, size, offset)}]


def register(d, name, key, offset, size):
    return d.post("/v2/systemsharedmemory/region/%s/register" % name,
                  {"key": key, "offset": offset, "byte_size": size})


def status(d, name=None):
    path = "/v2/systemsharedmemory/status" if name is None else \
        "/v2/systemsharedmemory/region/%s/status" % name
    return d.get(path)


def unregister(d, name=None):
    path = "/v2/systemsharedmemory/unregister" if name is None else \
        "/v2/systemsharedmemory/region/%s/unregister" % name
    return d.post(path)


def infer(d, body, model="up2d"):
    return d.post("/v2/models/%s/infer" % model, body)


def is_error(r, code, *words):
    """(ok, detail): status code, a JSON {"error"} body containing words."""
    try:
        msg = r.json().get("error", "")
    except ValueError:
        return False, "%s not JSON: %r" % (r.status_code, r.text[:300])
    ok = r.status_code == code and isinstance(msg, str) and all(w in msg for w in words)
    return ok, "%s %s" % (r.status_code, r.text[:400])


def metric(d, name):
    for ln in d.get("/metrics").text.splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    return None


# ------------------------------------------------------------ extension off

def test_disabled():
    with T.Daemon(shipped=["up2d"], name="shm-off daemon") as d:
        d.start()
        o = Obj(4096, "off")
        try:
            r = d.get("/v2")
            check("off: server metadata does not list system_shared_memory",
                  r.status_code == 200 and "system_shared_memory" not in r.json()["extensions"],
                  r.text)
            calls = [("register", lambda: register(d, "r", o.key, 0, 64)),
                     ("status", lambda: status(d)),
                     ("region status", lambda: status(d, "r")),
                     ("unregister", lambda: unregister(d, "r")),
                     ("unregister all", lambda: unregister(d))]
            x = rnd(1, 2, 2, 3)
            calls.append(("infer with the input in shared memory", lambda: infer(d, {
                "inputs": [shm_input(x.shape, "r", x.nbytes)]})))
            calls.append(("infer with the output in shared memory", lambda: infer(d, {
                "inputs": [json_input(x)], "outputs": shm_output("r", 4096)})))
            for what, call in calls:
                ok, why = is_error(call(), 400, "disabled", '"shared_memory": true')
                check("off: %s -> 400 saying how to enable it" % what, ok, why)
            check("off: the object was not touched", bytes(o.mm[:8]) == b"\0" * 8, "")
            ok, why = is_error(d.get("/v2/cudasharedmemory/status"), 400, "CUDA")
            check("off: cuda status -> 400", ok, why)
            r = infer(d, {"inputs": [json_input(x)]})
            check("off: plain inference still 200", r.status_code == 200, r.text[:200])
        finally:
            o.close()


# ------------------------------------------------------------- extension on

def test_meta_and_auth(d):
    r = d.get("/v2")
    check("server metadata lists system_shared_memory",
          r.status_code == 200 and "system_shared_memory" in r.json()["extensions"], r.text)
    for method, path in (("GET", "/v2/systemsharedmemory/status"),
                         ("GET", "/v2/systemsharedmemory/region/a/status"),
                         ("POST", "/v2/systemsharedmemory/region/a/register"),
                         ("POST", "/v2/systemsharedmemory/region/a/unregister"),
                         ("POST", "/v2/systemsharedmemory/unregister"),
                         ("GET", "/v2/cudasharedmemory/status")):
        r = requests.request(method, d.url(path), timeout=10,
                             data=json.dumps({"key": "/x", "offset": 0, "byte_size": 4}))
        check("auth: %s %s without the token -> 401" % (method, path), r.status_code == 401,
              r.status_code)


def test_register_status_unregister(d, objs):
    a, b = objs["a"], objs["b"]
    r = status(d)
    check("status with nothing registered: 200 []", r.status_code == 200 and r.json() == [],
          r.text)
    r = register(d, "in_a", a.key, 0, 8192)
    check("register in_a: 200", r.status_code == 200, r.text)
    r = register(d, "out_b", b.key, PAGE, 2 * PAGE)
    check("register out_b at a page offset: 200", r.status_code == 200, r.text)
    r = register(d, "odd", b.key, 3, 100)
    check("register at an unaligned offset: 200", r.status_code == 200, r.text)
    r = status(d)
    want = [{"name": "in_a", "key": a.key, "offset": 0, "byte_size": 8192},
            {"name": "out_b", "key": b.key, "offset": PAGE, "byte_size": 2 * PAGE},
            {"name": "odd", "key": b.key, "offset": 3, "byte_size": 100}]
    check("status lists the three regions (Triton's shape)",
          r.status_code == 200 and r.json() == want, r.text)
    r = status(d, "out_b")
    check("region status: [that region]", r.status_code == 200 and r.json() == want[1:2], r.text)
    ok, why = is_error(status(d, "nosuch"), 404, "nosuch")
    check("status of an unknown region: 404 naming it", ok, why)
    ok, why = is_error(register(d, "in_a", b.key, 0, 16), 400, "already registered")
    check("registering a name twice: 400", ok, why)
    check("the first registration stands",
          status(d, "in_a").json() == want[0:1], status(d, "in_a").text)
    check("metrics: deconvd_shared_memory_regions 3",
          metric(d, "deconvd_shared_memory_regions") == 3,
          metric(d, "deconvd_shared_memory_regions"))
    v = metric(d, "deconvd_shared_memory_bytes")
    check("metrics: deconvd_shared_memory_bytes spans the mappings", v is not None and
          v >= 8192 + 2 * PAGE + 100, v)
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=d.get("/metrics").content,
                           capture_output=True, timeout=30)
        check("promtool check metrics with regions registered: clean",
              p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
              (p.returncode, p.stdout.decode(), p.stderr.decode()))
    else:
        T.R.skip("promtool check metrics", "promtool not installed")
    r = unregister(d, "odd")
    check("unregister one: 200", r.status_code == 200, r.text)
    check("status no longer lists it", status(d).json() == want[:2], status(d).text)
    r = unregister(d, "odd")
    check("unregister a name not registered: 200 (as Triton)", r.status_code == 200, r.text)
    r = d.get("/v2/systemsharedmemory/region/in_a/register")
    check("GET on register: 405", r.status_code == 405, r.status_code)
    r = d.post("/v2/systemsharedmemory/status")
    check("POST on status: 405", r.status_code == 405, r.status_code)
    r = d.post("/v2/systemsharedmemory/register", {"key": a.key, "byte_size": 4})
    check("register without a region name: 404", r.status_code == 404, r.status_code)


def test_numerics(d, objs):
    a, b = objs["a"], objs["b"]     # in_a = a[0, 8192), out_b = b[PAGE, 3 * PAGE)
    x = rnd(1, 8, 8, 3)             # 768 B in; 1x16x16x2 = 2048 B out
    want = T.up2d_ref(x)
    nout = want.size

    # input in shm, output in shm
    a.put(x, 64)
    b.fill(0)
    r = infer(d, {"id": "shm-1", "inputs": [shm_input(x.shape, "in_a", x.nbytes, 64)],
                  "outputs": shm_output("out_b", 4 * nout)})
    ok = r.status_code == 200
    check("in shm -> out shm: 200", ok, r.text[:300])
    if ok:
        out = r.json()["outputs"][0]
        check("in shm -> out shm: the output has parameters and no data",
              "data" not in out and out["parameters"] == {
                  "shared_memory_region": "out_b", "shared_memory_byte_size": 4 * nout,
                  "shared_memory_offset": 0} and out["shape"] == [1, 16, 16, 2]
              and out["datatype"] == "FP32" and r.json().get("id") == "shm-1", r.text)
        got = b.get("<f4", nout, PAGE).reshape(want.shape)
        check("in shm -> out shm: values match the NumPy reference", *close(got, want))
        check("in shm -> out shm: the body is small", len(r.content) < 400, len(r.content))

    # input in shm, output as JSON
    r = infer(d, {"inputs": [shm_input(x.shape, "in_a", x.nbytes, 64)]})
    check("in shm -> out JSON: values match",
          *(close(T.output_array(r.json()), want) if r.status_code == 200 else (False, r.text)))

    # input in shm, binary output
    r = infer(d, {"inputs": [shm_input(x.shape, "in_a", x.nbytes, 64)],
                  "parameters": {"binary_data_output": True}})
    head, data = T.parse_binary_response(r) if r.status_code == 200 else (None, None)
    check("in shm -> binary out: values match",
          *(close(data.reshape(want.shape), want) if data is not None else (False, r.text)))

    # binary input, output in shm at an offset within the region
    x2 = rnd(1, 5, 7, 3)
    want2 = T.up2d_ref(x2)
    hdr = json.dumps({"inputs": [{"name": "input", "shape": list(x2.shape), "datatype": "FP32",
                                  "parameters": {"binary_data_size": x2.nbytes}}],
                      "outputs": shm_output("out_b", 4 * want2.size, 256)}).encode()
    b.fill(0)
    r = d.post("/v2/models/up2d/infer", data=hdr + x2.tobytes(),
               headers={"Inference-Header-Content-Length": str(len(hdr))})
    ok = r.status_code == 200 and "Inference-Header-Content-Length" not in r.headers
    check("binary in -> out shm: 200 JSON", ok, r.text[:300])
    got = b.get("<f4", want2.size, PAGE + 256).reshape(want2.shape)
    check("binary in -> out shm (offset 256): values match", *close(got, want2))
    check("binary in -> out shm: the bytes before the offset are untouched",
          not b.get("u1", 256, PAGE).any(), "")

    # JSON input, output at an unaligned offset of a region (copied in)
    b.fill(0)
    r = infer(d, {"inputs": [json_input(x)], "outputs": shm_output("out_b", 4 * nout, 2)})
    got = b.get("<f4", nout, PAGE + 2).reshape(want.shape) if r.status_code == 200 else None
    check("JSON in -> out shm at an unaligned address: values match",
          *(close(got, want) if got is not None else (False, r.text)))

    # FP32 input at an unaligned address (converted, not read in place)
    a.put(x, 4097)
    r = infer(d, {"inputs": [shm_input(x.shape, "in_a", x.nbytes, 4097)]})
    check("in shm at an unaligned address -> JSON: values match",
          *(close(T.output_array(r.json()), want) if r.status_code == 200 else (False, r.text)))

    # other datatypes from shared memory
    for dt, npdt in (("FP64", "<f8"), ("INT16", "<i2"), ("FP16", "<f2"), ("UINT8", "u1")):
        xi = (RNG.integers(0, 100, size=(1, 4, 4, 3))).astype(npdt)
        a.put(xi, 0)
        r = infer(d, {"inputs": [shm_input(xi.shape, "in_a", xi.nbytes, 0, dt)]})
        check("%s input in shm -> JSON: values match" % dt,
              *(close(T.output_array(r.json()), T.up2d_ref(xi.astype(np.float64)))
                if r.status_code == 200 else (False, r.text)))

    # Conv1D too, versioned path, output bigger region than needed (Triton: at least)
    x1 = rnd(2, 6, 2)
    w1 = T.up1d_ref(x1)
    a.put(x1, 0)
    r = d.post("/v2/models/up1d/versions/1/infer",
               {"inputs": [shm_input(x1.shape, "in_a", x1.nbytes)],
                "outputs": shm_output("out_b", 2 * PAGE)})
    got = b.get("<f4", w1.size, PAGE).reshape(w1.shape) if r.status_code == 200 else None
    check("up1d (versioned path), region larger than the output: values match",
          *(close(got, w1) if got is not None else (False, r.text)))

    # input and output sharing bytes of one object: the input is read first
    both = Obj(8192, "both")
    try:
        register(d, "both", both.key, 0, 8192)
        register(d, "both_alias", both.key, 0, 4096)
        both.put(x, 0)
        r = infer(d, {"inputs": [shm_input(x.shape, "both", x.nbytes)],
                      "outputs": shm_output("both", 4 * nout)})
        got = both.get("<f4", nout, 0).reshape(want.shape) if r.status_code == 200 else None
        check("input and output at the same bytes of one region: values match",
              *(close(got, want) if got is not None else (False, r.text)))
        both.put(x, 0)
        r = infer(d, {"inputs": [shm_input(x.shape, "both_alias", x.nbytes)],
                      "outputs": shm_output("both", 4 * nout, 512)})
        got = both.get("<f4", nout, 512).reshape(want.shape) if r.status_code == 200 else None
        check("input and output overlapping through two regions of one object: values match",
              *(close(got, want) if got is not None else (False, r.text)))
    finally:
        unregister(d, "both")
        unregister(d, "both_alias")
        both.close()


def test_errors(d, objs):
    a = objs["a"]
    x = rnd(1, 8, 8, 3)
    nout = 16 * 16 * 2
    cases = [
        ("unknown input region", {"inputs": [shm_input(x.shape, "nosuch", x.nbytes)]},
         ["unknown shared memory region 'nosuch'"]),
        ("unknown output region", {"inputs": [json_input(x)],
                                   "outputs": shm_output("nosuch", 4 * nout)},
         ["unknown shared memory region 'nosuch'"]),
        ("input offset + size beyond the region",
         {"inputs": [shm_input(x.shape, "in_a", x.nbytes, 8192 - 100)]},
         ["holds 8192 bytes", "offset 8092", "byte_size 768"]),
        ("input offset beyond the region",
         {"inputs": [shm_input(x.shape, "in_a", x.nbytes, 1 << 40)]}, ["holds 8192 bytes"]),
        ("output beyond the region",
         {"inputs": [json_input(x)], "outputs": shm_output("out_b", 4 * nout, 2 * PAGE - 8)},
         ["holds %d bytes" % (2 * PAGE)]),
        ("input byte size != shape x 4",
         {"inputs": [shm_input(x.shape, "in_a", x.nbytes - 4)]},
         ["shared_memory_byte_size is 764", "needs 768 bytes"]),
        ("output region too small for the output",
         {"inputs": [json_input(x)], "outputs": shm_output("out_b", 4 * nout - 4)},
         ["is %d" % (4 * nout - 4), "needs %d bytes" % (4 * nout)]),
        ("negative offset",
         {"inputs": [shm_input(x.shape, "in_a", x.nbytes, -4)]}, ["shared_memory_offset"]),
        ("non-integer byte size",
         {"inputs": [shm_input(x.shape, "in_a", 767.5)]}, ["shared_memory_byte_size"]),
        ("overflowing byte size",
         {"inputs": [shm_input(x.shape, "in_a", 2 ** 64)]}, ["shared_memory_byte_size"]),
        ("string byte size",
         {"inputs": [shm_input(x.shape, "in_a", "768")]}, ["shared_memory_byte_size"]),
        ("region without byte size",
         {"inputs": [{"name": "input", "shape": [1, 8, 8, 3], "datatype": "FP32",
                      "parameters": {"shared_memory_region": "in_a"}}]},
         ["needs parameters.shared_memory_byte_size"]),
        ("both data and a region",
         {"inputs": [dict(json_input(x), parameters=shm_params("in_a", x.nbytes))]},
         ["has both"]),
    ]
    for what, body, words in cases:
        ok, why = is_error(infer(d, body), 400, *words)
        check("infer, %s: 400 naming it" % what, ok, why)

    bad_regs = [
        ("an object that does not exist", "r1", {"key": "/dcvtest-shm-none-%d" % os.getpid(),
                                                 "offset": 0, "byte_size": 16},
         ["no shared memory object"]),
        ("a key without a leading /", "r1", {"key": a.name, "offset": 0, "byte_size": 16},
         ["invalid shared memory key"]),
        ("a key with a further /", "r1", {"key": "/x/../" + a.name, "offset": 0,
                                          "byte_size": 16}, ["invalid shared memory key"]),
        ("a 300-byte key", "r1", {"key": "/" + "k" * 300, "offset": 0, "byte_size": 16},
         ["invalid shared memory key"]),
        ("a range beyond the object", "r1", {"key": a.key, "offset": 8192, "byte_size": 1},
         ["has %d bytes" % a.size, "offset 8192 + byte_size 1"]),
        ("byte_size 0", "r1", {"key": a.key, "offset": 0, "byte_size": 0}, ["positive"]),
        ("a negative offset", "r1", {"key": a.key, "offset": -1, "byte_size": 16},
         ['"offset"', "-1"]),
        ("a fractional byte_size", "r1", {"key": a.key, "offset": 0, "byte_size": 1.5},
         ['"byte_size"', "1.5"]),
        ("an overflowing offset", "r1", {"key": a.key, "offset": 2 ** 64, "byte_size": 1},
         ['"offset"']),
        ("a string byte_size", "r1", {"key": a.key, "offset": 0, "byte_size": "16"},
         ['"byte_size"', "string"]),
        ("no byte_size", "r1", {"key": a.key, "offset": 0}, ['"byte_size"']),
        ("no key", "r1", {"offset": 0, "byte_size": 16}, ['"key"']),
        ("an unknown member", "r1", {"key": a.key, "offset": 0, "byte_size": 16, "size": 1},
         ['"size"']),
        ("an invalid region name", ".hidden", {"key": a.key, "offset": 0, "byte_size": 16},
         ["invalid shared memory region name"]),
        ("a region name with a space", "a%20b", {"key": a.key, "offset": 0, "byte_size": 16},
         ["invalid shared memory region name"]),
    ]
    for what, name, body, words in bad_regs:
        r = d.post("/v2/systemsharedmemory/region/%s/register" % name, body)
        ok, why = is_error(r, 400, *words)
        check("register with %s: 400" % what, ok, why)
    for what, data in (("a body that is not JSON", "{key"), ("an empty body", ""),
                       ("a JSON array", "[]")):
        r = d.post("/v2/systemsharedmemory/region/r1/register", data=data)
        check("register with %s: 400" % what, r.status_code == 400, (r.status_code, r.text))
    check("no failed registration was kept", [s["name"] for s in status(d).json()]
          == ["in_a", "out_b"], status(d).text)

    for method, path in (("GET", "/v2/cudasharedmemory/status"),
                         ("GET", "/v2/cudasharedmemory/region/c/status"),
                         ("POST", "/v2/cudasharedmemory/region/c/register"),
                         ("POST", "/v2/cudasharedmemory/unregister")):
        ok, why = is_error(d.request(method, path, data="{}"), 400, "CUDA shared memory is not "
                           "supported")
        check("%s %s: 400 CUDA not supported" % (method, path), ok, why)
    for path in ("/v2/systemsharedmemory", "/v2/systemsharedmemory/region/a",
                 "/v2/systemsharedmemory/region/a/b/status", "/v2/systemsharedmemory/explode"):
        r = d.get(path)
        check("GET %s: 404" % path, r.status_code == 404, r.status_code)


def test_truncated(d):
    o = Obj(4 * PAGE, "trunc")
    try:
        x = rnd(1, 8, 8, 3)
        o.put(x, 0)
        r = register(d, "trunc", o.key, 0, 4 * PAGE)
        check("truncate: register a 4-page object", r.status_code == 200, r.text)
        r = infer(d, {"inputs": [shm_input(x.shape, "trunc", x.nbytes)],
                      "outputs": shm_output("trunc", 2048, 2 * PAGE)})
        check("truncate: works before", r.status_code == 200, r.text[:200])
        o.mm.close()                      # touching it past the new end would fault here too
        os.ftruncate(o.fd, PAGE)
        ok, why = is_error(infer(d, {"inputs": [json_input(x)],
                                     "outputs": shm_output("trunc", 2048, 2 * PAGE)}),
                           400, "truncated", o.key)
        check("truncate: output in the cut part -> 400, no SIGBUS", ok, why)
        ok, why = is_error(infer(d, {"inputs": [shm_input(x.shape, "trunc", x.nbytes,
                                                          3 * PAGE)]}), 400, "truncated")
        check("truncate: input in the cut part -> 400", ok, why)
        r = infer(d, {"inputs": [shm_input(x.shape, "trunc", x.nbytes)]})
        check("truncate: the part still there still works",
              *(close(T.output_array(r.json()), T.up2d_ref(x)) if r.status_code == 200
                else (False, r.text)))
        check("truncate: daemon alive, health 200",
              d.alive() and d.get("/v2/health/live").status_code == 200, d.tail())
        r = unregister(d, "trunc")
        check("truncate: unregister the truncated region: 200", r.status_code == 200, r.text)
    finally:
        o.close()


def test_cap(d):
    o = Obj(PAGE, "cap")
    try:
        base = len(status(d).json())
        codes = [register(d, "cap%d" % i, o.key, 0, 64).status_code
                 for i in range(128 - base)]
        check("cap: up to 128 regions register", all(c == 200 for c in codes), codes)
        ok, why = is_error(register(d, "cap-extra", o.key, 0, 64), 400, "at most 128")
        check("cap: the 129th is refused, saying so", ok, why)
        unregister(d, "cap0")
        r = register(d, "cap-extra", o.key, 0, 64)
        check("cap: after one unregister, room again", r.status_code == 200, r.text)
        for i in range(1, 128 - base):
            unregister(d, "cap%d" % i)
        unregister(d, "cap-extra")
        check("cap: back to the regions before", len(status(d).json()) == base, status(d).text)
    finally:
        o.close()


# ------------------------------------------- unregister while a request holds

HEAVY_C = 128


def test_unregister_while_held(d, k, b):
    name = "unregister while a request holds the regions"
    if T.skip_under_valgrind(name, T.LOOP_STARVED):
        return
    side, dt = 24, 0.0
    for _ in range(6):                 # grow the input until a request takes ~0.6 s
        x = np.zeros((1, side, side, HEAVY_C), np.float32)
        body, h = T.binary_request(x.tobytes(), x.shape, binary_output=True)
        d.post("/v2/models/heavy/infer", data=body, headers=h)     # plan cache warm-up
        t0 = time.monotonic()
        r = d.post("/v2/models/heavy/infer", data=body, headers=h)
        dt = time.monotonic() - t0
        if r.status_code != 200 or dt >= 0.5 or side >= 192:
            break
        side = min(192, int(side * max(1.3, (0.7 / max(dt, 1e-3)) ** 0.5)))
    print("# heavy: side %d takes %.2f s" % (side, dt), flush=True)
    x = rnd(1, side, side, HEAVY_C)
    nin, nout = x.nbytes, x.nbytes
    oi, oo = Obj(nin, "hin"), Obj(nout, "hout")
    try:
        oi.put(x)
        r1, r2 = register(d, "hin", oi.key, 0, nin), register(d, "hout", oo.key, 0, nout)
        check("held: register both regions", r1.status_code == 200 and r2.status_code == 200,
              (r1.text, r2.text))
        bg = T.Bg(infer, d, {"inputs": [shm_input(x.shape, "hin", nin)],
                             "outputs": shm_output("hout", nout)}, "heavy")
        bg.start()
        inflight = T.wait_until(lambda: (metric(d, "deconvd_inflight_requests") or 0) >= 1,
                                10, 0.01)
        ru, ra = unregister(d, "hin"), unregister(d)
        still = bg.is_alive()
        check("held: unregister one and all while the request runs: 200",
              ru.status_code == 200 and ra.status_code == 200, (ru.text, ra.text))
        check("held: status is empty at once", status(d).json() == [], status(d).text)
        # (binary output: its JSON would be above max_response_bytes)
        ok, why = is_error(infer(d, {"inputs": [shm_input(x.shape, "hin", nin)],
                                     "parameters": {"binary_data_output": True}}, "heavy"),
                           400, "unknown shared memory region 'hin'")
        check("held: a new request cannot use the unregistered name", ok, why)
        r = register(d, "hin", oo.key, 0, 64)
        check("held: the name can be registered again meanwhile", r.status_code == 200, r.text)
        unregister(d, "hin")
        bg.join(T.t(60))
        r = bg.result
        ok = isinstance(r, requests.Response) and r.status_code == 200
        check("held: the request that held the regions completes 200 (inflight at unregister: "
              "%s, still running after: %s)" % (bool(inflight), still), ok,
              r if not isinstance(r, requests.Response) else r.text[:300])
        if ok:
            out = oo.get("<f4", x.size).reshape(x.shape)
            check("held: its output was written into the unregistered region, correct",
                  *T.heavy_check(out, x, k, b, RNG, samples=16))
        check("held: daemon alive", d.alive(), d.tail())
        check("held: metrics count no region",
              metric(d, "deconvd_shared_memory_regions") == 0,
              metric(d, "deconvd_shared_memory_regions"))
    finally:
        oi.close()
        oo.close()


def main():
    T.R.run(test_disabled)
    doc, npy, k, b = T.heavy_model(RNG, c=HEAVY_C, k=9)
    with T.Daemon(config={"shared_memory": True, "auth_token": TOKEN, "workers": 2},
                  models={"heavy": doc}, npy=npy, shipped=["up1d", "up2d"],
                  name="shm daemon") as d:
        d.start()
        objs = {"a": Obj(8192, "a"), "b": Obj(4 * PAGE, "b")}
        try:
            T.R.run(test_meta_and_auth, d)
            T.R.run(test_register_status_unregister, d, objs)
            if T.answers_inference(d, "up1d", rnd(1, 3, 2)):
                for fn in (test_numerics, test_errors):
                    T.R.run(fn, d, objs)
                T.R.run(test_truncated, d)
                T.R.run(test_cap, d)
                r = unregister(d)
                check("unregister all: 200, status []",
                      r.status_code == 200 and status(d).json() == [], status(d).text)
                T.R.run(test_unregister_while_held, d, k, b)
            else:
                T.R.skip("shared-memory inference checks", "inference answers hang")
            check("shm daemon alive after the tests", d.alive(), d.tail())
        finally:
            for o in objs.values():
                o.close()


if __name__ == "__main__":
    T.main_guard(main)
