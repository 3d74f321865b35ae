#!/usr/bin/python3
"""Hostile network input against the ASan build of deconvd.

Every case must get a 4xx JSON error (or, for what libmicrohttpd refuses
before deconvd sees it, an MHD 4xx page or a clean close), the daemon must
still serve correct answers afterwards, and at the end it must exit 0 on
SIGTERM with no AddressSanitizer / LeakSanitizer / UBSan report in its
stderr (detect_leaks=1). Each daemon's log must also stay one well-formed
logfmt line per event whatever was thrown at it.

Run: make robustness (or DECONVD_ASAN_BIN=... /usr/bin/python3 this file).
"""
import json
import os
import re
import resource
import socket
import struct
import time

import numpy as np
import requests

import rlib as L

T = L.T
check = L.check

UP1D_K = np.load(os.path.join(T.SHIPPED_MODELS, "up1d.kernel.npy"))
UP1D_B = np.load(os.path.join(T.SHIPPED_MODELS, "up1d.bias.npy"))
X = np.array([[[1, 2], [3, 4]]], dtype=np.float32)           # (1, 2, 2)
GOOD = json.dumps(T.infer_body(X)).encode()
WANT = T.keras_ref(X, UP1D_K, UP1D_B, [2], "same")

TIMEOUT_S = 2
MAX_BODY = 1 << 20

MIN_RATE = 65536                 # bytes/s, so that a steady 100+ kB/s upload passes

HOSTILE_CONFIG = {"max_connections": 64, "connection_timeout_s": TIMEOUT_S,
                  "max_body_bytes": MAX_BODY, "max_tensor_elems": 1 << 20, "workers": 2,
                  "threads_per_request": 1, "log_level": "debug",
                  "min_transfer_rate": MIN_RATE}


def still_serving(d, what):
    """The daemon answers a known request correctly (fresh connection)."""
    try:
        r = requests.post(d.url("/v2/models/up1d/infer"), data=GOOD, timeout=30)
        ok, why = (T.close(T.output_array(r.json()), WANT) if r.status_code == 200
                   else (False, "%s %s" % (r.status_code, r.text[:200])))
    except requests.RequestException as e:
        ok, why = False, repr(e)
    check("%s: daemon still serves correct answers" % what, ok and d.alive(), why)


def expect_error(d, name, path, body, codes=(400,), headers=None):
    """POSTs body; checks a JSON {"error"} answer with a status in codes."""
    try:
        r = requests.post(d.url(path), data=body, headers=headers or {}, timeout=30)
    except requests.RequestException as e:
        check(name, False, repr(e))
        return None
    check(name, L.is_json_error(r, codes), "%s %r" % (r.status_code, r.content[:300]))
    return r


def kserve(shape, data, datatype="FP32", name="input", extra=None):
    inp = {"name": name, "shape": shape, "datatype": datatype, "data": data}
    body = {"inputs": [inp]}
    body.update(extra or {})
    return body


# ------------------------------------------------------------ JSON bodies

def test_json_bodies(d):
    infer = "/v2/models/up1d/infer"
    # malformed / not a request
    cases = [("empty body", b""), ("lone brace", b"{"), ("mismatched", b"{]"),
             ("bare word", b"nul"), ("trailing garbage", GOOD + b"xyz"),
             ("NUL byte", b"\x00"), ("NUL in a number", GOOD.replace(b"3.0", b"3\x00.0")),
             ("NUL in a key", GOOD.replace(b'"shape"', b'"sh\x00ape"')),
             ("array root", b"[]"), ("string root", b'"x"'), ("number root", b"1"),
             ("inputs object", b'{"inputs":{}}'), ("inputs empty", b'{"inputs":[]}'),
             ("input not object", b'{"inputs":[1]}'), ("unterminated string", b'{"inputs":"'),
             ("bad escape", b'{"id":"\\x41","inputs":[]}'),
             ("lone surrogate escape", b'{"id":"\\ud800","inputs":[]}'),
             ("two inputs", json.dumps({"inputs": [kserve([1, 2, 2], [1, 2, 3, 4])["inputs"][0]] * 2}).encode()),
             ("wrong input name", json.dumps(kserve([1, 2, 2], [1, 2, 3, 4], name="x")).encode()),
             ("unknown datatype", json.dumps(kserve([1, 2, 2], [1, 2, 3, 4], "BYTES")).encode()),
             ("datatype not string", json.dumps(kserve([1, 2, 2], [1, 2, 3, 4], 5)).encode())]
    for name, body in cases:
        expect_error(d, "malformed JSON (%s): 400 JSON error" % name, infer, body)

    # every truncation of a valid request
    bad = []
    for n in range(len(GOOD)):
        r = requests.post(d.url(infer), data=GOOD[:n], timeout=30)
        if not L.is_json_error(r, (400,)):
            bad.append((n, r.status_code, r.content[:120]))
    check("truncated JSON: all %d prefixes of a valid request get a 400 JSON error"
          % len(GOOD), not bad, bad[:5])

    # 100 000 nesting levels, everywhere
    n = 100000
    deep = [("data", b'{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":'
                     + b"[" * n + b"]" * n + b"}]}", infer),
            ("shape", b'{"inputs":[{"name":"input","shape":' + b"[" * n + b"]" * n
                      + b',"datatype":"FP32","data":[1]}]}', infer),
            ("root arrays", b"[" * n + b"]" * n, infer),
            ("root objects", b'{"a":' * n + b"1" + b"}" * n, infer),
            ("unclosed", b"[" * n, infer),
            ("tfs instances", b'{"instances":' + b"[" * n + b"1" + b"]" * n + b"}",
             "/v1/models/up1d:predict"),
            ("tfs objects", b'{"instances":[' + b'{"a":' * n + b"1" + b"}" * n + b"]}",
             "/v1/models/up1d:predict"),
            ("shape endpoint", b'{"input_shape":' + b"[" * n + b"]" * n + b"}",
             "/v2/models/up1d/shape"),
            ("layer shape endpoint", b'{"config":' + b'{"a":' * n + b"1" + b"}" * n + b"}",
             "/v2/shape"),
            ("op endpoint", b'{"input":' + b"[" * n + b"]" * n + b"}",
             "/v2/ops/conv1d_transpose"),
            ("data 999 deep", b'{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32",'
                              b'"data":' + b"[" * 999 + b"1,2,3,4" + b"]" * 999 + b"}]}", infer)]
    for name, body, path in deep:
        expect_error(d, "nesting 100000 levels (%s): 400 JSON error" % name, path, body)
    still_serving(d, "after deep nesting")

    # numbers
    numbers = [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity"),
               ("1e999", "1e999"), ("-1e999", "-1e999"), ("4e40 (> float32 max)", "4e40"),
               ("hex", "0x10"), ("leading plus", "+1"), ("leading dot", ".5"),
               ("string", '"1"'), ("two dots", "1.2.3"), ("bare minus", "-"),
               ("exponent only", "e5"),
               ("true", "true"), ("null", "null"), ("array", "[]"), ("object", "{}"),
               ("huge mantissa", "1" * 5000), ("huge exponent", "1e" + "9" * 400)]
    for name, lit in numbers:
        body = ('{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32",'
                '"data":[1,2,3,%s]}]}' % lit).encode()
        expect_error(d, "data value %s: 400 JSON error" % name, infer, body)
    # -0 and denormal underflow are numbers: answered, and correctly
    for lit, val in (("-0", -0.0), ("-0.0", -0.0), ("1e-999", 0.0), ("1e-45", 1e-45)):
        body = ('{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32",'
                '"data":[1,2,3,%s]}]}' % lit).encode()
        r = requests.post(d.url(infer), data=body, timeout=30)
        x = np.array([[[1, 2], [3, np.float32(val)]]], dtype=np.float32)
        ok, why = (T.close(T.output_array(r.json()), T.keras_ref(x, UP1D_K, UP1D_B, [2], "same"))
                   if r.status_code == 200 else (False, "%s %s" % (r.status_code, r.text)))
        check("data value %s: 200 with the right answer" % lit, ok, why)
    # lenient number spellings (JSON forbids them): 400, or 200 with the value they spell
    for lit, val in (("1.", 1.0), ("01", 1.0)):
        body = ('{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32",'
                '"data":[1,2,3,%s]}]}' % lit).encode()
        r = requests.post(d.url(infer), data=body, timeout=30)
        x = np.array([[[1, 2], [3, val]]], dtype=np.float32)
        ok = L.is_json_error(r, (400,)) or (r.status_code == 200 and T.close(
            T.output_array(r.json()), T.keras_ref(x, UP1D_K, UP1D_B, [2], "same"))[0])
        check("data value %s (not JSON): 400 or read as %g, nothing else" % (lit, val), ok,
              r.content[:200])
    # integer ranges are checked on the float32 value (tensor.c): 2^31 passes for INT32
    for dt, lit in (("INT32", "4294967296"), ("INT8", "300"), ("UINT8", "-1"),
                    ("INT64", "1e20"), ("INT32", "1.5"), ("FP16", "70000"),
                    ("BOOL", "2"), ("UINT64", "1e30")):
        body = ('{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"%s",'
                '"data":[1,0,1,%s]}]}' % (dt, lit)).encode()
        expect_error(d, "%s value %s out of range: 400 JSON error" % (dt, lit), infer, body)

    # shapes
    shapes = [("zero dim", [1, 0, 2], (400,)), ("negative dim", [1, -2, 2], (400,)),
              ("minus one", [1, -1, 2], (400,)), ("fractional", [1, 2.5, 2], (400,)),
              ("string dim", [1, "2", 2], (400,)), ("null dim", [1, None, 2], (400,)),
              ("empty", [], (400,)), ("rank 1", [4], (400,)), ("rank 9", [1] * 9, (400,)),
              ("huge dim 2^40", [1, 2 ** 40, 2], (400, 413)),
              ("product > 2^64", [2 ** 32, 2 ** 32, 2], (400, 413)),
              ("product wraps to small", [2 ** 62, 4, 2], (400, 413)),
              ("product exactly 2^64", [2 ** 32, 2 ** 31, 2], (400, 413)),
              ("int64 max", [1, 2 ** 63 - 1, 2], (400, 413)),
              ("beyond int64", [1, 2 ** 64, 2], (400, 413)),
              ("1e999 dim", "1e999", (400,)), ("wrong rank for model", [2, 2], (400,)),
              ("wrong channels", [1, 2, 3], (400,)), ("huge but legal", [1, 600000, 2], (413, 400))]
    for name, shape, codes in shapes:
        if isinstance(shape, str):
            body = ('{"inputs":[{"name":"input","shape":[1,%s,2],"datatype":"FP32",'
                    '"data":[1,2,3,4]}]}' % shape).encode()
        else:
            body = json.dumps(kserve(shape, [1, 2, 3, 4])).encode()
        expect_error(d, "shape %s: %s JSON error" % (name, "/".join(map(str, codes))), infer,
                     body, codes)
    for name, data in (("fewer values", [1, 2, 3]), ("more values", [1, 2, 3, 4, 5]),
                       ("no values", []), ("ragged nested", [[1, 2], [3]]),
                       ("nested too many", [[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
                       ("data is object", {"a": 1}), ("data is string", "1234"),
                       ("data missing", None)):
        body = kserve([1, 2, 2], data)
        if data is None:
            del body["inputs"][0]["data"]
        expect_error(d, "data length != shape product (%s): 400 JSON error" % name, infer,
                     json.dumps(body).encode())
    still_serving(d, "after bad numbers and shapes")

    # binary tensors: datatype/size mismatches, Inference-Header-Content-Length lies
    raw4 = struct.pack("<4f", 1, 2, 3, 4)

    def binreq(size, dt="FP32", shape=(1, 2, 2), payload=raw4, hl=None, extra=None):
        inp = {"name": "input", "shape": list(shape), "datatype": dt,
               "parameters": {"binary_data_size": size}}
        inp.update(extra or {})
        j = json.dumps({"inputs": [inp]}).encode()
        return j + payload, {"Inference-Header-Content-Length": str(len(j)) if hl is None else hl}

    body, h = binreq(16)
    r = requests.post(d.url(infer), data=body, headers=h, timeout=30)
    check("binary tensor baseline: 200", r.status_code == 200, r.text[:200])
    bins = [("size smaller than shape", binreq(12)), ("size larger than shape", binreq(20)),
            ("payload short", binreq(16, payload=raw4[:12])),
            ("payload long", binreq(16, payload=raw4 + b"1234")),
            ("FP16 size for FP32 bytes", binreq(8, "FP16")),
            ("FP64 size too small", binreq(16, "FP64")),
            ("negative size", binreq(-16)), ("fractional size", binreq(15.5)),
            ("size as string", binreq("16")), ("size 1e30", binreq(1e30)),
            ("size 2^64", binreq(2 ** 64)),
            ("both data and binary", binreq(16, extra={"data": [1, 2, 3, 4]})),
            ("NaN payload", binreq(16, payload=struct.pack("<4f", 1, 2, 3, float("nan")))),
            ("Inf payload", binreq(16, payload=struct.pack("<4f", 1, 2, 3, float("inf")))),
            ("IHCL larger than body", binreq(16, hl="99999")),
            ("IHCL negative", binreq(16, hl="-1")), ("IHCL non-numeric", binreq(16, hl="abc")),
            ("IHCL empty", binreq(16, hl="")), ("IHCL hex", binreq(16, hl="0x10")),
            ("IHCL overflow", binreq(16, hl="18446744073709551617")),
            ("IHCL zero", binreq(16, hl="0")), ("IHCL cuts the JSON", binreq(16, hl="5"))]
    for name, (body, h) in bins:
        expect_error(d, "binary %s: 400 JSON error" % name, infer, body, (400,), h)
    for hl in (" 5 ", "5x", "1e2", "\t9"):
        body, _ = binreq(16)
        r = L.raw(d.port, L.http_req("POST", infer, body,
                                     headers={"Inference-Header-Content-Length": hl}))
        check("binary IHCL %r (raw socket): 400 JSON error" % hl, L.is_json_error(r, (400,)), r)
    still_serving(d, "after binary mismatches")

    # invalid UTF-8 anywhere in the JSON: 400 with an error that is valid UTF-8 JSON
    utf = [("id", b'{"id":"\xff\xfe","inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}'),
           ("input name", b'{"inputs":[{"name":"\xc3\x28","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}'),
           ("datatype", b'{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP\xe2\x82","data":[1,2,3,4]}]}'),
           ("key", b'{"\xed\xa0\x80":1,"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}'),
           ("overlong slash", b'{"id":"\xc0\xaf","inputs":[]}'),
           ("binary header", None)]
    for name, body in utf:
        if body is None:
            j = (b'{"id":"\xf8\x88\x80\x80\x80","inputs":[{"name":"input","shape":[1,2,2],'
                 b'"datatype":"FP32","parameters":{"binary_data_size":16}}]}')
            expect_error(d, "invalid UTF-8 in a binary request's JSON header: 400", infer,
                         j + raw4, (400,), {"Inference-Header-Content-Length": str(len(j))})
            continue
        expect_error(d, "invalid UTF-8 in %s: 400 JSON error (valid UTF-8)" % name, infer, body)
    for name, path, body in (
            ("TF Serving key", "/v1/models/up1d:predict", b'{"instances":[{"\xff":[[1,2]]}]}'),
            ("layer class_name", "/v2/shape", b'{"class_name":"\xff\xfe","config":{}}'),
            ("layer padding", "/v2/shape",
             b'{"class_name":"Conv1DTranspose","config":{"filters":1,"kernel_size":3,'
             b'"padding":"\xff"},"input_shape":[1,4,1]}'),
            ("op padding", "/v2/ops/conv1d_transpose",
             b'{"input":{"shape":[1,2,1],"data":[1,2]},"filters":{"shape":[1,1,1],"data":[1]},'
             b'"output_shape":[1,2,1],"padding":"\xff"}')):
        expect_error(d, "invalid UTF-8 in %s: 400 JSON error (valid UTF-8)" % name, path, body)
    # valid multi-byte text cut by a message length limit must not yield broken UTF-8
    r = requests.post(d.url("/v2/shape"), timeout=30, data=json.dumps(
        {"class_name": "Conv1DTranspose", "config": {"filters": 1, "kernel_size": 3,
                                                     "activation": "a" + "\u00e9" * 300},
         "input_shape": [1, 4, 1]}).encode())
    check("long multi-byte text cut in an error message: still valid UTF-8 JSON",
          L.is_json_error(r, (400,)), r.content[-200:])
    # id echo with quotes/newlines stays JSON
    r = requests.post(d.url(infer), timeout=30, data=json.dumps(
        kserve([1, 2, 2], [1, 2, 3, 4], extra={"id": 'a"b\\c\nd\u2028\x01'})).encode())
    ok = r.status_code == 200 and r.json().get("id") == 'a"b\\c\nd\u2028\x01'
    check("request id with quotes, backslash, newline, U+2028, control: echoed exactly", ok,
          r.content[:300])

    # TF Serving, shape and op endpoints
    for name, path, body, codes in (
            ("tfs ragged", "/v1/models/up1d:predict", b'{"instances":[[[1,2]],[[1,2],[3,4]]]}', (400,)),
            ("tfs no instances", "/v1/models/up1d:predict", b'{"instances":[]}', (400,)),
            ("tfs wrong key", "/v1/models/up1d:predict", b'{"signature_name":"x"}', (400,)),
            ("tfs NaN", "/v1/models/up1d:predict", b'{"instances":[[[1,NaN]]]}', (400,)),
            ("shape negative", "/v2/models/up1d/shape", b'{"input_shape":[1,-5,2]}', (400,)),
            ("shape huge", "/v2/models/up1d/shape", b'{"input_shape":[1,1e300,2]}', (400,)),
            ("layer huge kernel", "/v2/shape",
             b'{"class_name":"Conv2DTranspose","config":{"filters":1000000,"kernel_size":100000},'
             b'"input_shape":[1,4,4,1000000]}', (400, 413)),
            ("op missing filters", "/v2/ops/conv1d_transpose",
             b'{"input":{"shape":[1,2,1],"data":[1,2]},"output_shape":[1,2,1]}', (400,)),
            ("op huge output", "/v2/ops/conv1d_transpose",
             b'{"input":{"shape":[1,2,1],"data":[1,2]},"filters":{"shape":[1,1,1],"data":[1]},'
             b'"output_shape":[1,1099511627776,1],"strides":549755813888}', (400, 413)),
            ("op zero stride", "/v2/ops/conv1d_transpose",
             b'{"input":{"shape":[1,2,1],"data":[1,2]},"filters":{"shape":[1,1,1],"data":[1]},'
             b'"output_shape":[1,2,1],"strides":0}', (400,)),
            ("op channel mismatch", "/v2/ops/conv2d_transpose",
             b'{"input":{"shape":[1,2,2,3],"data":[1,2,3,4,5,6,7,8,9,10,11,12]},'
             b'"filters":{"shape":[1,1,1,2],"data":[1,2]},"output_shape":[1,2,2,1]}', (400,))):
        expect_error(d, "%s: %s JSON error" % (name, "/".join(map(str, codes))), path, body, codes)
    still_serving(d, "after the JSON cases")


# ------------------------------------------------------------ HTTP level

def test_http_level(d):
    p = d.port
    infer = "/v2/models/up1d/infer"
    hdr = "POST %s HTTP/1.1\r\nHost: x\r\n" % infer

    # Content-Length lies
    r = L.raw(p, (hdr + "Content-Length: 10\r\nConnection: close\r\n\r\n").encode() + GOOD)
    check("Content-Length shorter than the body: 400 JSON error on the prefix",
          L.is_json_error(r, (400,)), r)
    r = L.raw(p, (hdr + "Content-Length: 10\r\n\r\n").encode() + GOOD, want=2, timeout=6)
    codes = [x[0] for x in r.responses]
    check("Content-Length shorter, keep-alive: the rest is parsed as a new request and "
          "refused (4xx), no 2xx", codes and all(400 <= c < 500 for c in codes), r)
    t0 = time.monotonic()
    r = L.raw(p, (hdr + "Content-Length: 1000\r\n\r\n").encode() + GOOD, timeout=TIMEOUT_S + 6)
    check("Content-Length longer than sent, client waits: closed without an answer within "
          "connection_timeout_s (+ sweep)", r.closed and r.status is None
          and time.monotonic() - t0 < TIMEOUT_S + 4, r)
    r = L.raw(p, (hdr + "Content-Length: 1000\r\n\r\n").encode() + GOOD, shutdown_write=True,
              timeout=TIMEOUT_S + 6)
    check("Content-Length longer than sent, client half-closes: clean close, no 2xx",
          r.closed and (r.status is None or 400 <= r.status < 500), r)
    for name, v in (("negative", "-5"), ("non-numeric", "abc"), ("empty", ""),
                    ("huge", "9" * 30), ("with sign", "+82"), ("hex", "0x52"),
                    ("two values", "82, 82")):
        r = L.raw(p, (hdr + "Content-Length: %s\r\nConnection: close\r\n\r\n" % v).encode()
                  + GOOD, timeout=TIMEOUT_S + 6)
        check("Content-Length %s: 4xx or clean close" % name,
              (r.status is not None and 400 <= r.status < 500) or (r.status is None and r.closed),
              r)
    r = L.raw(p, (hdr + "Content-Length: %d\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                  % len(GOOD)).encode() + GOOD, timeout=TIMEOUT_S + 6)
    check("two different Content-Length headers: no 5xx (4xx, the first one, or a close)",
          r.status is None or r.status < 500, r)
    check("after Content-Length lies: live", L.health_ok(p), "")

    # body over the limit: a client waiting for 100 Continue gets the 413 at
    # once; one sending its body gets it after the body (read and dropped)
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall((hdr + "Expect: 100-continue\r\nContent-Length: %d\r\n\r\n"
               % (MAX_BODY + 1)).encode())
    s.settimeout(5)
    try:
        got = s.recv(4096)
    except OSError as e:
        got = repr(e).encode()
    s.close()
    rs = L.parse_responses(got)
    check("Content-Length over max_body_bytes, Expect: 100-continue: 413 JSON before the body "
          "is sent", rs and rs[0][0] == 413 and b"max_body_bytes" in rs[0][2], got[:300])
    r = L.raw(p, (hdr + "Content-Length: %d\r\n\r\n" % (MAX_BODY + 1)).encode()
              + b" " * (MAX_BODY + 1), timeout=15)
    check("Content-Length over max_body_bytes, body sent: 413 JSON after it (no reset)",
          L.is_json_error(r, (413,)) and b"max_body_bytes" in r.body, r)
    big = b"x" * 65536
    body = b"".join(b"%x\r\n" % len(big) + big + b"\r\n" for _ in range(MAX_BODY // 65536 + 4))
    r = L.raw(p, (hdr + "Transfer-Encoding: chunked\r\n\r\n").encode() + body + b"0\r\n\r\n",
              timeout=15)
    check("chunked body over max_body_bytes (no Content-Length): 413 JSON error",
          L.is_json_error(r, (413,)), r)
    body = b"".join(b"%x\r\n" % len(big) + big + b"\r\n" for _ in range(3 * MAX_BODY // 65536))
    r = L.raw(p, (hdr + "Transfer-Encoding: chunked\r\n\r\n").encode() + body + b"0\r\n\r\n",
              timeout=15)
    check("chunked body 3x over max_body_bytes: 413 or clean close (discarding is bounded)",
          L.is_json_error(r, (413,)) or (r.closed and r.status is None), r)
    check("after oversized bodies: live", L.health_ok(p), "")

    # chunked uploads without length
    chunked = b"%x\r\n" % len(GOOD) + GOOD + b"\r\n0\r\n\r\n"
    r = L.raw(p, (hdr + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
              + chunked)
    ok, why = (T.close(T.output_array(r.json()), WANT) if r.status == 200 else (False, r))
    check("chunked upload without Content-Length: 200 and correct", ok, why)
    tiny = b"".join(b"1\r\n" + GOOD[i:i + 1] + b"\r\n" for i in range(len(GOOD))) + b"0\r\n\r\n"
    r = L.raw(p, (hdr + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode() + tiny)
    check("chunked upload in 1-byte chunks: 200", r.status == 200, r)
    for name, c in (("bad chunk size", b"zz\r\nabc\r\n0\r\n\r\n"),
                    ("chunk size overflow", b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
                    ("negative chunk size", b"-5\r\nabc\r\n0\r\n\r\n"),
                    ("chunk shorter than announced", b"10\r\nabc\r\n0\r\n\r\n")):
        r = L.raw(p, (hdr + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
                  + c, timeout=TIMEOUT_S + 6)
        check("chunked %s: 4xx or clean close" % name,
              (r.status is not None and 400 <= r.status < 500) or (r.status is None and r.closed),
              r)
    r = L.raw(p, (hdr + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\nConnection: close"
                  "\r\n\r\n").encode() + chunked)
    check("Transfer-Encoding and Content-Length together: no 5xx", r.status is None or
          r.status < 500, r)

    # names and paths
    paths = ["/v2/models/../../etc/passwd/infer", "/v2/models/..%2F..%2Fetc%2Fpasswd",
             "/v2/models/%2e%2e/infer", "/v2/models/%2e%2e%2f%2e%2e%2fetc%2fpasswd/infer",
             "/v2/models/up1d%00x", "/v2/models/up1d%00/infer", "/v2/models/%ff%fe",
             "/v2/models/%c0%ae%c0%ae/infer", "/v2/models/up1d%0d%0aX-Injected:%201",
             "/v2/models/a%22b", "/v2/models/.hidden", "/v2/models/up1d.json",
             "/v2/models/" + "a" * 300, "/v1/models/..%2Fup1d", "/v1/models/%2e%2e:predict",
             "/v1/models/up1d%00:predict", "/v2/repository/models/..%2Fx/load",
             "/v2/repository/models/%ff/load", "/v2/repository/models/up1d%00x/unload",
             "/v2/models/%75p1d%00/ready", "/v2/models/\xff\xfe/infer"]
    bad = []
    for path in paths:
        for m in ("GET", "POST"):
            r = L.raw(p, L.http_req(m, path, b"{}" if m == "POST" else b""))
            if not L.is_json_error(r, (400, 404, 405)):
                bad.append((m, path, r))
    check("unknown/escaping/percent-encoded/invalid-UTF-8 model names and paths: 400/404/405 "
          "JSON errors, never a model answer (%d requests)" % (2 * len(paths)), not bad, bad[:4])
    r = L.raw(p, L.http_req("GET", "/v2/models/up1d%00x"))
    check("encoded NUL does not truncate the path (/v2/models/up1d%00x is not up1d): 404",
          r.status == 404, r)
    r = L.raw(p, L.http_req("GET", "/v2/health/live%00/../../metrics"))
    check("encoded NUL after the health path is not the health endpoint", r.status == 404, r)

    # long URLs and headers
    r = L.raw(p, L.http_req("GET", "/v2/models/" + "a" * 100000))
    check("100 kB URL: 414 (MHD's page: beyond its 32 KiB pool) or clean close",
          r.status == 414 or (r.status is None and r.closed), r)
    r = L.raw(p, L.http_req("GET", "/v2/models/" + "a" * 12000))
    check("12 kB URL: 414 JSON", L.is_json_error(r, (414,)), r)
    r = L.raw(p, L.http_req("GET", "/v2/models/" + "a" * 3000))
    check("3 kB URL: 404 JSON", L.is_json_error(r, (404,)), r)
    r = L.raw(p, L.http_req("GET", "/" + "/".join(["v2"] * 500)))
    check("500 path segments: 404 JSON", L.is_json_error(r, (404,)), r)
    r = L.raw(p, L.http_req("GET", "/v2/health/live", headers={"X-A": "a" * 100000}))
    check("100 kB header: 431 or clean close", r.status == 431 or (r.status is None and r.closed), r)
    r = L.raw(p, L.http_req("GET", "/v2/health/live", headers={"X-A": "a" * 20000}))
    check("20 kB header: 431 JSON", L.is_json_error(r, (431,)), r)
    r = L.raw(p, L.http_req("GET", "/v2/health/live",
                            headers={"X-%d" % i: "a" for i in range(300)}))
    check("300 headers: 431 JSON", L.is_json_error(r, (431,)), r)
    r = L.raw(p, L.http_req("GET", "/v2/health/live",
                            headers={"X-%d" % i: "a" for i in range(5000)}))
    # beyond MHD's 32 KiB per-connection pool the page is MHD's own (HTML)
    check("5000 headers: 431 or clean close", r.status == 431 or (r.status is None and r.closed), r)

    # pipelining
    reqs = (L.http_req("GET", "/v2/health/live", close=False)
            + L.http_req("POST", infer, GOOD, close=False)
            + L.http_req("GET", "/v2/models/nope", close=False)
            + L.http_req("GET", "/v2/health/ready", close=True))
    r = L.raw(p, reqs, want=4, timeout=10)
    codes = [x[0] for x in r.responses]
    ok = codes == [200, 200, 404, 200]
    if ok:
        ok, why = T.close(T.output_array(json.loads(r.responses[1][2])), WANT)
    else:
        why = r
    check("pipelined requests (4 in one write): answered in order, correct", ok, why)
    r = L.raw(p, L.http_req("POST", infer, GOOD, close=False) * 50, want=50, timeout=20)
    check("50 pipelined inferences: 50 answers, all 200",
          len(r.responses) == 50 and all(x[0] == 200 for x in r.responses),
          [x[0] for x in r.responses][:60])

    # HTTP versions
    r = L.raw(p, b"GET /v2/health/live HTTP/1.0\r\n\r\n", want=2, timeout=5)
    check("HTTP/1.0 GET: 200, Connection: close, and closed", r.status == 200 and r.closed
          and r.responses[0][1].get("connection", "").lower() == "close", r)
    r = L.raw(p, ("POST %s HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % (infer, len(GOOD))).encode()
              + GOOD)
    check("HTTP/1.0 POST: 200", r.status == 200, r)
    for name, data in (("HTTP/0.9", b"GET /v2/health/live\r\n\r\n"),
                       ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
                       ("HTTP/1.9", b"GET /v2/health/live HTTP/1.9\r\n\r\n"),
                       ("HTTP/3.0", b"GET /v2/health/live HTTP/3.0\r\n\r\n"),
                       ("binary garbage", bytes(range(256)) + b"\r\n\r\n"),
                       ("TLS hello", bytes.fromhex("16030100a5010000a10303") + os.urandom(64)),
                       ("bare LFs", b"GET /v2/health/live HTTP/1.1\nHost: x\nConnection: close\n\n"),
                       ("header without colon", b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n"
                                                b"Bad Header\r\n\r\n")):
        r = L.raw(p, data, timeout=TIMEOUT_S + 6)
        check("%s: no crash, 2xx/4xx/505 or a clean close" % name,
              (r.status is None and r.closed) or (r.status is not None and r.status != 500
                                                   and r.status < 506), r)

    # methods
    bad = []
    for m in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO"):
        for path in ("/v2/models/up1d", infer, "/v2/health/live", "/metrics",
                     "/v2/repository/index", "/v1/models/up1d:predict"):
            r = L.raw(p, L.http_req(m, path, b"{}" if m in ("PUT", "PATCH") else b""))
            if not (L.is_json_error(r, (405,)) and r.responses[0][1].get("allow")):
                bad.append((m, path, r))
    check("methods other than GET/POST: 405 JSON error with Allow", not bad, bad[:4])
    r = L.raw(p, L.http_req("HEAD", "/v2/models/up1d"), want=2, timeout=5)
    check("HEAD on a GET endpoint: 200 with no body", r.data.startswith(b"HTTP/1.1 200 ")
          and r.data.endswith(b"\r\n\r\n") and r.closed, r)
    for m in ('GE"T', "GE\\T", '"}],"x":"AAAA', "G\x01T", "G\xffT"):
        r = L.raw(p, L.http_req(m, "/v2/models/up1d"))
        check("method %r: the 405 body stays valid JSON (no injection)" % m,
              L.is_json_error(r, (405,)) or (r.status is not None and 400 <= r.status < 500
                                             and r.status != 405), r)
    still_serving(d, "after HTTP-level cases")


# ------------------------------------------------------------ slow clients

def test_slow_clients(d):
    p = d.port

    def trickle(first, byte, seconds, gap=0.5):
        """Sends first, then `byte` every gap s; returns seconds until the
        server closed (None if it never did)."""
        s = socket.create_connection(("127.0.0.1", p), timeout=5)
        t0 = time.monotonic()
        try:
            s.sendall(first)
            while time.monotonic() - t0 < seconds:
                s.sendall(byte)
                time.sleep(gap)
                s.setblocking(False)
                try:
                    if s.recv(4096) == b"":
                        return time.monotonic() - t0
                except BlockingIOError:
                    pass
                finally:
                    s.setblocking(True)
        except OSError:
            return time.monotonic() - t0
        finally:
            s.close()
        return None

    limit = TIMEOUT_S + 2.5
    t = trickle(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a", TIMEOUT_S + 8)
    check("slowloris headers (1 byte / 0.5 s): closed within connection_timeout_s "
          "(+ sweep), %s" % (None if t is None else "%.1fs" % t), t is not None and t < limit, t)
    t = trickle(b"POST /v2/models/up1d/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
                b"[", TIMEOUT_S + 8)
    check("slow body (1 byte / 0.5 s): closed within connection_timeout_s (+ sweep), %s"
          % (None if t is None else "%.1fs" % t), t is not None and t < limit, t)
    t = trickle(b"POST /v2/models/up1d/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                b"\r\n\r\n", b"1\r\n[\r\n", TIMEOUT_S + 8)
    check("slow chunked body: closed, %s" % (None if t is None else "%.1fs" % t),
          t is not None and t < limit, t)
    t = trickle(b"", b"\r\n", TIMEOUT_S + 8)
    check("stream of empty lines before a request: closed, %s"
          % (None if t is None else "%.1fs" % t), t is not None and t < limit, t)

    # many slowloris connections at once; health is served meanwhile and after
    socks = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", p), timeout=5)
        s.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    t0 = time.monotonic()
    during = L.health_ok(p, timeout=5)
    closed = 0
    while time.monotonic() - t0 < TIMEOUT_S + 4 and closed < len(socks):
        closed = 0
        for s in socks:
            try:
                s.sendall(b"a")
            except OSError:
                closed += 1
        time.sleep(0.5)
    for s in socks:
        s.close()
    check("40 slowloris connections: health answered meanwhile", during, "")
    check("40 slowloris connections: all cut within connection_timeout_s (+ sweep)",
          closed == len(socks), "%d of %d closed" % (closed, len(socks)))

    # a legitimately slow but steady upload is not cut
    x = np.random.default_rng(1).standard_normal((1, 12000, 2)).astype(np.float32)
    body = json.dumps(T.infer_body(x)).encode()
    n = len(body)
    step = max(1, n // 40)
    chunks = [("POST /v2/models/up1d/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n" % n).encode()]
    chunks += [body[i:i + step] for i in range(0, n, step)]
    gap = (TIMEOUT_S + 1.5) / len(chunks)       # whole upload longer than the timeout
    r = L.raw(p, None, chunks=chunks, gap=gap, timeout=60)
    rate = n / (gap * len(chunks)) / 1024
    check("steady upload of %d kB over %.1f s (%.0f kB/s, > connection_timeout_s, "
          "> min_transfer_rate): 200"
          % (n // 1024, gap * len(chunks), rate), r.status == 200, r)

    # a client that stops reading a large answer is closed by MHD's idle timeout
    # (the answer, ~9 MB of JSON, is larger than the socket buffers)
    side = 30
    xg = np.full((1, side, side, side, 8), 0.5, dtype=np.float32)
    body, h = T.binary_request(xg.tobytes(), xg.shape)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", p))
    s.sendall(L.http_req("POST", "/v2/models/gen3d/infer", body, headers=h))
    time.sleep(TIMEOUT_S + 3)
    buf, closed = b"", False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            c = s.recv(1 << 20)
        except socket.timeout:
            break
        except OSError:
            closed = True
            break
        if not c:
            closed = True
            break
        buf += c
    s.close()
    he = buf.find(b"\r\n\r\n")
    m = re.search(rb"content-length: *(\d+)", buf[:max(he, 0)], re.I)
    full = int(m.group(1)) if m else None
    got = len(buf) - he - 4 if he >= 0 else 0
    check("client that stops reading a %s-byte answer: closed by the idle timeout before "
          "the end (got %d bytes)" % (full, got), closed and full and got < full,
          (closed, full, got, buf[:200]))
    check("the stalled download is logged outcome=timeout",
          T.wait_until(lambda: "/v2/models/gen3d/infer" in d.log() and
                       "outcome=timeout" in d.log().split("/v2/models/gen3d/infer")[-1], 5), "")
    still_serving(d, "after slow clients")


# ------------------------------------------------------------ connection floods

def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_many(port, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    return socks


def test_connection_flood():
    maxc = 256
    with L.RDaemon(config={"max_connections": maxc, "connection_timeout_s": TIMEOUT_S,
                           "workers": 1, "threads_per_request": 1},
                   shipped=["up1d"], name="hostile flood daemon") as d:
        d.start()
        p, pid = d.port, d.proc.pid
        base_fds = L.fd_count(pid)
        n = min(3000, raise_nofile(4096) - 200)
        # (1) more idle connections than max_connections, kept open
        socks = open_many(p, maxc + 100)
        time.sleep(0.5)
        held = L.socket_fds(pid)
        check("flood: %d idle connections, the daemon holds at most max_connections=%d "
              "(holds %d sockets)" % (len(socks), maxc, held), held is not None and held <= maxc + 4,
              held)
        t0 = time.monotonic()
        ok = L.health_ok(p, timeout=4 * TIMEOUT_S + 6)
        dt = time.monotonic() - t0
        L.figure("flood: health answered after (s), %d idle conns, limit %d" % (len(socks), maxc),
                 "%.2f" % dt)
        check("flood: a new connection's health check is answered once idle ones time out "
              "(%.1fs)" % dt, ok, dt)
        for s in socks:
            s.close()
        # (2) thousands of connections, then all close at once (the case where
        # MHD left its listening socket out of epoll and the daemon stopped accepting)
        socks = open_many(p, n)
        time.sleep(0.3)
        for s in socks:
            s.close()
        t0 = time.monotonic()
        ok = L.health_ok(p, timeout=TIMEOUT_S + 8)
        dt = time.monotonic() - t0
        check("flood: %d connections opened then closed at once: still accepting (%.1fs)"
              % (len(socks), dt), ok, dt)
        # (3) thousands left to time out at once
        socks = open_many(p, n)
        time.sleep(TIMEOUT_S + 2)                    # the first max_connections time out
        for s in socks:
            s.close()
        ok = T.wait_until(lambda: L.health_ok(p, timeout=3), 3 * TIMEOUT_S + 10, 0.2)
        check("flood: %d connections timed out by the daemon: still accepting afterwards"
              % len(socks), ok, "")
        settled = T.wait_until(lambda: L.fd_count(pid) <= base_fds + 2, 3 * TIMEOUT_S + 10, 0.2)
        check("flood: fd count back to baseline (%s -> %s)" % (base_fds, L.fd_count(pid)),
              settled, "")
        still_serving(d, "flood")
        lines = L.log_lines(d)
        bad = [ln for ln in lines if not L.logfmt_ok(ln)]
        check("flood daemon: every log line well-formed logfmt (%d lines)" % len(lines), not bad,
              bad[:3])


# ------------------------------------------------------------ model side

def conv1d(name, kernel="k.npy", bias="b.npy", filters=1, ksize=3, extra=None):
    cfg = {"name": name, "filters": filters, "kernel_size": ksize, "strides": 2,
           "padding": "same"}
    cfg.update(extra or {})
    doc = {"class_name": "Conv1DTranspose", "config": cfg}
    if kernel is not None:
        doc["weights"] = {"kernel": kernel, "bias": bias}
    return doc


def test_models():
    rng = np.random.default_rng(3)
    k = rng.standard_normal((3, 1, 2)).astype("<f4")
    b = rng.standard_normal(1).astype("<f4")
    outside = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rlib.py")
    with L.RDaemon(config={"max_weight_elems": 1000000, "connection_timeout_s": TIMEOUT_S,
                           "workers": 2, "threads_per_request": 1},
                   shipped=["up1d"], models={"good": conv1d("good")},
                   npy={"k.npy": k, "b.npy": b}, name="hostile models daemon") as d:
        d.start()
        md = d.models_dir
        xg = rng.standard_normal((1, 5, 2)).astype(np.float32)
        want_good = T.keras_ref(xg, k, b, [2], "same")

        def good_ok():
            r = d.post("/v2/models/good/infer", T.infer_body(xg))
            return r.status_code == 200 and T.close(T.output_array(r.json()), want_good)[0]

        with open(os.path.join(md, "short.npy"), "wb") as f:          # says 3x1x2, holds 2
            f.write(L.npy_bytes("(3, 1, 2)", payload=k.tobytes()[:8]))
        with open(os.path.join(md, "huge_hdr.npy"), "wb") as f:       # says 10^12 elements
            f.write(L.npy_bytes("(1000000, 1000000)", payload=k.tobytes()))
        with open(os.path.join(md, "overflow.npy"), "wb") as f:       # product overflows 64 bits
            f.write(L.npy_bytes("(4611686018427387904, 8)", payload=k.tobytes()))
        with open(os.path.join(md, "neg.npy"), "wb") as f:
            f.write(L.npy_bytes("(-3, 1, 2)", payload=k.tobytes()))
        with open(os.path.join(md, "int64.npy"), "wb") as f:
            f.write(L.npy_bytes("(3, 1, 2)", descr="<i8", payload=b"\0" * 48))
        with open(os.path.join(md, "bigendian.npy"), "wb") as f:
            f.write(L.npy_bytes("(3, 1, 2)", descr=">f4", payload=k.byteswap().tobytes()))
        with open(os.path.join(md, "object.npy"), "wb") as f:
            f.write(L.npy_bytes("(3, 1, 2)", descr="|O", payload=b"\0" * 48))
        with open(os.path.join(md, "badmagic.npy"), "wb") as f:
            f.write(L.npy_bytes("(3, 1, 2)", magic=b"\x93NUMPZ", payload=k.tobytes()))
        with open(os.path.join(md, "hlen.npy"), "wb") as f:           # header length past EOF
            f.write(L.npy_bytes("(3, 1, 2)", hlen=60000, payload=k.tobytes()))
        with open(os.path.join(md, "version9.npy"), "wb") as f:
            f.write(L.npy_bytes("(3, 1, 2)", version=b"\x09\x00", payload=k.tobytes()))
        with open(os.path.join(md, "deephdr.npy"), "wb") as f:
            f.write(L.npy_bytes("(" * 5000 + ")" * 5000, payload=k.tobytes()))
        with open(os.path.join(md, "empty.npy"), "wb") as f:
            pass
        T.write_npy(os.path.join(md, "wrongshape.npy"), np.zeros((5, 1, 2)))
        T.write_npy(os.path.join(md, "big.npy"), np.zeros((2000, 1, 1000)))   # 2e6 > max
        os.symlink(outside, os.path.join(md, "link_out.npy"))
        os.symlink("/etc/passwd", os.path.join(md, "link_abs.npy"))
        os.symlink("/nonexistent/x.npy", os.path.join(md, "dangling.npy"))
        os.mkdir(os.path.join(md, "sub"))
        os.symlink(os.path.dirname(md), os.path.join(md, "sub", "up"))   # dir above models_dir
        T.write_npy(os.path.join(os.path.dirname(md), "k.npy"), k)
        bad = {
            "missing_weights": conv1d("m", kernel="nope.npy"),
            "missing_bias": conv1d("m", bias="nope.npy"),
            "wrong_shape": conv1d("m", kernel="wrongshape.npy"),
            "lying_short": conv1d("m", kernel="short.npy"),
            "lying_huge": conv1d("m", kernel="huge_hdr.npy"),
            "lying_overflow": conv1d("m", kernel="overflow.npy"),
            "lying_negative": conv1d("m", kernel="neg.npy"),
            "npy_int64": conv1d("m", kernel="int64.npy"),
            "npy_object": conv1d("m", kernel="object.npy"),
            "npy_badmagic": conv1d("m", kernel="badmagic.npy"),
            "npy_hlen": conv1d("m", kernel="hlen.npy"),
            "npy_version": conv1d("m", kernel="version9.npy"),
            "npy_deep": conv1d("m", kernel="deephdr.npy"),
            "npy_empty": conv1d("m", kernel="empty.npy"),
            "escape_dotdot": conv1d("m", kernel="../k.npy"),
            "escape_abs": conv1d("m", kernel="/etc/passwd"),
            "escape_symlink": conv1d("m", kernel="link_out.npy"),
            "escape_symlink_abs": conv1d("m", kernel="link_abs.npy"),
            "escape_dangling": conv1d("m", kernel="dangling.npy"),
            "escape_dir_link": conv1d("m", kernel="sub/up/k.npy"),
            "escape_encoded": conv1d("m", kernel="%2e%2e/k.npy"),
            "weights_dir": conv1d("m", kernel="sub"),
            "huge_npy": conv1d("m", kernel="big.npy", filters=1000, ksize=2000),
            "huge_init": {"class_name": "Conv3DTranspose",
                          "config": {"filters": 4096, "kernel_size": 512,
                                     "input_shape": [None, None, None, None, 4096]}},
            "huge_init_overflow": {"class_name": "Conv2DTranspose",
                                   "config": {"filters": 2 ** 40, "kernel_size": 2 ** 20,
                                              "input_shape": [None, None, None, 2 ** 40]}},
            "inline_bad_bias": conv1d("m", kernel=[[[0.0] * 2]] * 3, bias=[0.0] * 7),
            "bad_json": '{"class_name": "Conv1DTranspose", "config": {',
            "deep_json": "[" * 100000 + "]" * 100000,
            "not_object": "[1, 2, 3]",
            "bad_class": conv1d("m", extra={}) | {"class_name": "Dense"},
            "bad_padding": conv1d("m", extra={"padding": "causal"}),
            "bad_strides": conv1d("m", extra={"strides": 0}),
            "nan_inline": '{"class_name":"Conv1DTranspose","config":{"filters":1,"kernel_size":1},'
                          '"weights":{"kernel":[[[NaN, 1]]],"bias":[0]}}',
        }
        for name, doc in bad.items():
            d.write_model(name, doc)
        with open(os.path.join(md, "bad_utf8.json"), "wb") as f:
            f.write(b'{"class_name": "Conv1D\xff\xfeTranspose", "config": {"filters": 1}}')
        bad["bad_utf8"] = None
        os.symlink(os.path.join(md, "good.json"), os.path.join(md, "json_link.json"))

        def reloaded(before):
            return T.wait_until(lambda: d.log().count("msg=ready") > before, 60, 0.05)

        before = d.log().count("msg=ready")
        d.signal(__import__("signal").SIGHUP)
        check("models: SIGHUP reload with %d broken models completes" % len(bad),
              reloaded(before), d.log()[-2000:])
        idx = {e["name"]: e for e in d.post("/v2/repository/index", {}).json()}
        wrong = [n for n in bad if idx.get(n, {}).get("state") != "UNAVAILABLE"
                 or not idx.get(n, {}).get("reason")]
        check("models: every broken model is UNAVAILABLE with a reason (%d)" % len(bad),
              not wrong, [(n, idx.get(n)) for n in wrong][:6])
        for n in ("escape_dotdot", "escape_abs", "escape_symlink", "escape_symlink_abs",
                  "escape_dir_link"):
            reason = idx.get(n, {}).get("reason", "")
            check("models: %s refused as outside the models directory" % n,
                  "models directory" in reason or "outside" in reason or "'..'" in reason,
                  reason)
        for n in ("huge_npy", "huge_init", "huge_init_overflow", "lying_huge", "lying_overflow"):
            reason = idx.get(n, {}).get("reason", "")
            check("models: %s refused by size, not by running out of memory" % n,
                  idx.get(n, {}).get("state") == "UNAVAILABLE" and "memory" not in reason,
                  reason)
        check("models: good models still READY after the reload",
              idx.get("good", {}).get("state") == "READY" and idx.get("up1d", {}).get("state")
              == "READY", idx.get("good"))
        check("models: good model serves correct answers after the reload", good_ok(), "")
        rss = L.rss_kb(d.proc.pid)
        check("models: RSS after refusing huge kernels stays small (%s kB)" % rss,
              rss is not None and rss < 2 * 1024 * 1024, rss)

        # the same through the repository load endpoint, one by one
        bad_load = []
        for name in bad:
            r = d.post("/v2/repository/models/%s/load" % name, {})
            if not L.is_json_error(r, (400, 404, 413, 500)) or r.status_code == 500 \
                    and "memory" in r.text:
                bad_load.append((name, r.status_code, r.text[:200]))
        check("models: repository load of each broken model: a JSON error (4xx), daemon fine",
              not bad_load, bad_load[:5])
        check("models: good model still correct after %d failed loads" % len(bad), good_ok(), "")
        r = d.post("/v2/repository/models/..%2Fgood/load", {})
        check("models: repository load with an escaping name: 4xx JSON",
              L.is_json_error(r, (400, 404)), r.text)
        r = d.post("/v2/repository/models/nonexistent/load", {})
        check("models: repository load of a missing file: 4xx JSON",
              L.is_json_error(r, (400, 404)), r.text)

        # a good model broken in place keeps its previous version serving
        d.write_model("good", '{"class_name": "Conv1DTranspose", "config": {')
        before = d.log().count("msg=ready")
        d.signal(__import__("signal").SIGHUP)
        reloaded(before)
        check("models: a model file broken in place keeps the previous version serving",
              good_ok(), d.get("/v2/repository/index").text[:500])
        r = d.post("/v2/repository/models/good/load", {})
        check("models: loading the broken file via the endpoint fails with 4xx, old version "
              "kept", L.is_json_error(r, (400,)) and good_ok(), r.text)
        d.write_model("good", conv1d("good"))
        r = d.post("/v2/repository/models/good/load", {})
        check("models: the fixed file loads again via the endpoint", r.status_code == 200 and
              good_ok(), r.text)
        # model files are trusted: their text (here invalid UTF-8) is logged as is, so
        # only the line structure is checked
        lines = [ln.decode("utf-8", "replace") for ln in L.log_lines(d)]
        badl = [ln for ln in lines if not L.logfmt_ok(ln)]
        check("models daemon: every log line one well-formed logfmt line (%d lines)"
              % len(lines), not badl, badl[:3])
        r = d.post("/v2/repository/index", {})
        try:
            json.loads(r.content.decode("utf-8"))
            ok = True
        except (ValueError, UnicodeDecodeError) as e:
            ok = e
        check("models: the repository index stays valid UTF-8 JSON with a model file whose "
              "error quotes invalid UTF-8", ok is True, ok)


# ------------------------------------------------------------ main

def main():
    with L.RDaemon(config=HOSTILE_CONFIG, shipped=True, name="hostile daemon") as d:
        d.start()
        L.R.run(test_json_bodies, d)
        L.R.run(test_http_level, d)
        L.R.run(test_slow_clients, d)
        still_serving(d, "end of hostile input")
        lines = L.log_lines(d)
        bad = [ln for ln in lines if not L.logfmt_ok(ln)]
        check("hostile daemon: every log line is one well-formed logfmt line (%d lines)"
              % len(lines), not bad, bad[:3])
    L.R.run(test_connection_flood)
    L.R.run(test_models)


if __name__ == "__main__":
    L.main_guard(main, L.asan_binary(), 400)
