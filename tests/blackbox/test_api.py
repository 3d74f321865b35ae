#!/usr/bin/python3
"""test_api.py — the HTTP API of deconvd, black-box.

One daemon serves the shipped example models plus a set of generated ones
covering every geometry branch (valid/same, dilation, output_padding,
channels_first, stride > kernel, no bias, inline weights, 3-D); results are
compared with the NumPy reference in dcvtest. A second daemon checks
bearer-token auth. Prints one line per check and "N passed, N failed".
"""
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check, close  # noqa: E402

RNG = np.random.default_rng(1234)
MAX_BODY = 1 << 20


def rnd(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------ models

def conv_cfg(name, filters, k, s, padding, act="linear", dil=None, op=None, cf=False,
             use_bias=True, extra=None):
    c = {"name": name, "filters": filters, "kernel_size": k, "strides": s,
         "padding": padding, "activation": act, "use_bias": use_bias,
         "data_format": "channels_first" if cf else "channels_last"}
    if dil is not None:
        c["dilation_rate"] = dil
    if op is not None:
        c["output_padding"] = op
    c.update(extra or {})
    return c


# name -> dict(cls, cfg, kernel, bias, in_ch, rank, ...) ; weights given as
# npy files unless inline is set.
SPECS = {}


def spec(name, cls, rank, in_ch, filters, k, s, padding, act="linear", dil=None, op=None,
         cf=False, use_bias=True, inline=False, extra=None):
    kernel = rnd(*(list(k) + [filters, in_ch]), scale=0.5)
    bias = rnd(filters, scale=0.3) if use_bias else None
    SPECS[name] = dict(cls=cls, rank=rank, in_ch=in_ch, filters=filters, k=list(k),
                       s=list(s), padding=padding, act=act, dil=dil or [1] * rank, op=op,
                       cf=cf, kernel=kernel, bias=bias, inline=inline,
                       cfg=conv_cfg(name, filters, list(k), list(s), padding, act, dil, op,
                                    cf, use_bias, extra))


spec("c2v", "Conv2DTranspose", 2, 2, 3, (3, 2), (2, 3), "valid", "sigmoid", inline=True)
spec("c1dil", "Conv1DTranspose", 1, 3, 2, (3,), (1,), "same", "tanh", dil=[2])
spec("c2op", "Conv2DTranspose", 2, 2, 2, (3, 3), (2, 2), "same", op=[1, 0],
     extra={"kernel_regularizer": {"class_name": "L2", "config": {"l2": 0.01}},
            "my_custom_key": 7, "trainable": False})
spec("c2cf", "Conv2DTranspose", 2, 3, 2, (2, 2), (2, 2), "valid", "elu", cf=True)
spec("c3", "Conv3DTranspose", 3, 2, 2, (2, 3, 3), (1, 2, 2), "same", "relu")
spec("nob", "Conv2DTranspose", 2, 1, 1, (4, 4), (2, 2), "same", use_bias=False, inline=True)
spec("c1gap", "Conv1DTranspose", 1, 2, 2, (2,), (3,), "valid", "softplus")
spec("c2vop", "Conv2DTranspose", 2, 2, 3, (3, 3), (3, 2), "valid", "swish", op=[2, 1])


def model_docs():
    docs, npy = {}, {}
    for name, sp in SPECS.items():
        doc = {"class_name": sp["cls"], "config": sp["cfg"]}
        if sp["inline"]:
            w = {"kernel": sp["kernel"].tolist()}
            if sp["bias"] is not None:
                w["bias"] = sp["bias"].tolist()
        else:
            w = {"kernel": name + ".kernel.npy"}
            npy[name + ".kernel.npy"] = sp["kernel"]
            if sp["bias"] is not None:
                w["bias"] = name + ".bias.npy"
                npy[name + ".bias.npy"] = sp["bias"]
        doc["weights"] = w
        docs[name] = doc
    docs["broken"] = '{"class_name": "Conv2DTranspose", "config": {'
    docs.update(EXTRA_DOCS)
    return docs, npy


# Models without a NumPy reference (initializer weights).
EXTRA_DOCS = {
    # Keras 3 serialize_keras_object(): in-channels only in build_config
    "bconf": {"class_name": "Conv2DTranspose",
              "config": {"name": "bconf", "filters": 3, "kernel_size": 2, "strides": 2,
                         "padding": "valid", "activation": "relu"},
              "build_config": {"input_shape": [None, 8, 8, 5]}},
    # fully declared input: known spatial dims give a computed padding
    "fixed": {"class_name": "Conv2DTranspose",
              "config": {"name": "fixed", "filters": 2, "kernel_size": 3, "strides": 2,
                         "padding": "same", "batch_input_shape": [None, 4, 6, 2]}},
}


def ref_for(name, x):
    sp = SPECS[name]
    return T.keras_ref(x, sp["kernel"], sp["bias"], sp["s"], sp["padding"], sp["dil"],
                       sp["act"], sp["op"], sp["cf"])


# ----------------------------------------------------------------- tests

def test_health_and_server(d):
    r = d.get("/v2/health/live")
    check("live: 200 {live:true}", r.status_code == 200 and r.json() == {"live": True},
          "%s %s" % (r.status_code, r.text))
    r = d.get("/v2/health/ready")
    check("ready: 200 {ready:true}", r.status_code == 200 and r.json() == {"ready": True},
          "%s %s" % (r.status_code, r.text))
    r = d.get("/v2")
    j = r.json() if r.status_code == 200 else {}
    ext = j.get("extensions", [])
    check("server metadata: name deconvd, version string",
          j.get("name") == "deconvd" and isinstance(j.get("version"), str) and j["version"],
          r.text)
    for e in ("binary_tensor_data", "model_repository", "statistics", "model_configuration"):
        check("server metadata lists extension %s" % e, e in ext, ext)
    r = d.request("HEAD", "/v2/health/live")
    check("HEAD on a GET endpoint: 200", r.status_code == 200, r.status_code)


def test_metadata(d):
    r = d.get("/v2/models/up2d")
    j = r.json()
    check("metadata up2d: 200", r.status_code == 200, r.text)
    check("metadata up2d: name/versions/platform",
          j.get("name") == "up2d" and j.get("versions") == ["1"]
          and j.get("platform") == "keras_conv_transpose", j)
    check("metadata up2d: input signature",
          j.get("inputs") == [{"name": "input", "datatype": "FP32", "shape": [-1, -1, -1, 3]}],
          j.get("inputs"))
    check("metadata up2d: output signature",
          j.get("outputs") == [{"name": "output", "datatype": "FP32",
                                "shape": [-1, -1, -1, 2]}], j.get("outputs"))
    r2 = d.get("/v2/models/up2d/versions/1")
    check("metadata /versions/1 form equals plain form",
          r2.status_code == 200 and r2.json() == j, r2.text)
    r = d.get("/v2/models/gen3d")
    j = r.json()
    check("metadata gen3d (initializers, input_shape): input [-1,-1,-1,-1,8]",
          r.status_code == 200 and j["inputs"][0]["shape"] == [-1, -1, -1, -1, 8]
          and j["outputs"][0]["shape"] == [-1, -1, -1, -1, 4], r.text)
    r = d.get("/v2/models/bconf")
    j = r.json()
    check("metadata: in-channels from Keras 3 build_config (5)",
          r.status_code == 200 and j["inputs"][0]["shape"][-1] == 5
          and j["outputs"][0]["shape"][-1] == 3, r.text)
    r = d.get("/v2/models/c2cf")
    j = r.json()
    check("metadata channels_first: input [-1,3,-1,-1] output [-1,2,-1,-1]",
          r.status_code == 200 and j["inputs"][0]["shape"] == [-1, 3, -1, -1]
          and j["outputs"][0]["shape"] == [-1, 2, -1, -1], r.text)
    for path in ("/v2/models/up2d/ready", "/v2/models/up2d/versions/1/ready"):
        r = d.get(path)
        check("GET %s: 200 ready true" % path,
              r.status_code == 200 and r.json().get("ready") is True, r.text)
    r = d.get("/v2/models/fixed")
    check("metadata fixed: declared input [-1,4,6,2], output [-1,8,12,2]",
          r.status_code == 200 and r.json()["inputs"][0]["shape"] == [-1, 4, 6, 2]
          and r.json()["outputs"][0]["shape"] == [-1, 8, 12, 2], r.text)
    for path in ("/v2/models/up2d/versions/7", "/v2/models/up2d/versions/7/ready"):
        r = d.get(path)
        check("GET %s (no such version): 404" % path, r.status_code == 404,
              "%s %s" % (r.status_code, r.text[:200]))
    r = d.get("/v2/models/nosuch")
    check("metadata of unknown model: 404 JSON error",
          r.status_code == 404 and "error" in r.json(), r.text)
    r = d.get("/v2/models/nosuch/ready")
    check("ready of unknown model: 404", r.status_code == 404, r.text)
    r = d.get("/v2/models/broken/ready")
    check("ready of a model that failed to load: 503 ready false",
          r.status_code == 503 and r.json().get("ready") is False, r.text)


def test_config(d):
    r = d.get("/v2/models/up2d/config")
    j = r.json()
    check("config up2d: 200", r.status_code == 200, r.text)
    check("config up2d: normalized fields",
          j.get("filters") == 2 and j.get("kernel_size") == [3, 3] and j.get("strides") == [2, 2]
          and j.get("padding") == "same" and j.get("data_format") == "channels_last"
          and j.get("use_bias") is True, j)
    meta = j.get("deconvd", {})
    for key in ("inactive", "ignored", "computed_padding", "input_shape", "output_shape",
                "weights"):
        check("config up2d: deconvd.%s present" % key, key in meta, meta)
    check("config up2d: deconvd shapes", meta.get("input_shape") == [-1, -1, -1, 3]
          and meta.get("output_shape") == [-1, -1, -1, 2], meta)
    check("config up2d: deconvd.weights names the npy files",
          meta.get("weights") == {"kernel": "up2d.kernel.npy", "bias": "up2d.bias.npy"}, meta)
    check("config up2d: 'trainable': true (the default) not listed inactive",
          "trainable" not in meta.get("inactive", []), meta)
    eng = meta.get("engine", {})
    # a plan was built and packed at load time: oneDNN's name for it ("jit:avx512_core"...)
    check("config up2d: deconvd.engine names the oneDNN implementation and plan counts",
          ":" in eng.get("implementation", "") and eng.get("plans_cached", 0) >= 1
          and "plan_hits" in eng and "plan_misses" in eng, eng)
    r = d.get("/v2/models/c2op/versions/1/config")
    j = r.json()
    meta = j.get("deconvd", {})
    check("config c2op: output_padding normalized", j.get("output_padding") == [1, 0], j)
    check("config c2op: kernel_regularizer inactive",
          "kernel_regularizer" in meta.get("inactive", []), meta)
    check("config c2op: unknown key listed ignored", "my_custom_key" in meta.get("ignored", []),
          meta)
    check("config c2op: 'trainable': false listed inactive",
          "trainable" in meta.get("inactive", []), meta)
    r = d.get("/v2/models/gen3d/config")
    meta = r.json().get("deconvd", {})
    check("config gen3d: weights from initializers",
          meta.get("weights") == {"kernel": "initializer", "bias": "initializer"}, meta)
    r = d.get("/v2/models/fixed/config")
    meta = r.json().get("deconvd", {})
    # full = (n-1)*2 + 3: 9 and 13; out 8 and 12; before = (full-out)//2 = 0
    check("config fixed: computed_padding before [0,0] after [1,1]",
          meta.get("computed_padding") == {"before": [0, 0], "after": [1, 1]}, meta)
    check("config fixed: deconvd shapes [-1,4,6,2] -> [-1,8,12,2]",
          meta.get("input_shape") == [-1, 4, 6, 2] and meta.get("output_shape") == [-1, 8, 12, 2],
          meta)
    check("config up2d: computed_padding explains the per-size rule",
          isinstance(d.get("/v2/models/up2d/config").json()["deconvd"].get("computed_padding"),
                     str), "")
    r = d.get("/v2/models/nob/config")
    meta = r.json().get("deconvd", {})
    check("config nob: inline kernel, no bias",
          meta.get("weights") == {"kernel": "inline", "bias": "none"}, meta)
    r = d.get("/v2/models/nosuch/config")
    check("config of unknown model: 404", r.status_code == 404, r.text)


def test_infer_numerics(d):
    cases = [("c2v", (2, 3, 4, 2)), ("c1dil", (2, 7, 3)), ("c2op", (1, 5, 4, 2)),
             ("c2cf", (2, 3, 3, 4)), ("c3", (1, 3, 4, 3, 2)), ("nob", (1, 5, 6, 1)),
             ("c1gap", (2, 4, 2)), ("c2vop", (1, 3, 4, 2))]
    for name, shape in cases:
        x = rnd(*shape)
        want = ref_for(name, x)
        r = d.post("/v2/models/%s/infer" % name, T.infer_body(x, id="n-" + name))
        if not check("infer %s %s: 200" % (name, shape), r.status_code == 200, r.text[:500]):
            continue
        j = r.json()
        out = j["outputs"][0]
        check("infer %s: output shape %s" % (name, list(want.shape)),
              out["shape"] == list(want.shape) and out["name"] == "output"
              and out["datatype"] == "FP32", out.get("shape"))
        ok, why = close(T.output_array(j), want)
        check("infer %s: values match NumPy reference" % name, ok, why)
    # shipped models
    x = rnd(1, 5, 2)
    r = d.post("/v2/models/up1d/infer", T.infer_body(x))
    ok, why = close(T.output_array(r.json()), T.up1d_ref(x)) if r.status_code == 200 else (
        False, r.text)
    check("infer up1d (shipped npy weights) matches reference", ok, why)
    x = rnd(3, 4, 5, 3)
    r = d.post("/v2/models/up2d/infer", T.infer_body(x, id="batch3"))
    j = r.json()
    check("infer up2d batch 3: response envelope",
          r.status_code == 200 and j.get("model_name") == "up2d"
          and j.get("model_version") == "1" and j.get("id") == "batch3", r.text[:300])
    ok, why = close(T.output_array(j), T.up2d_ref(x))
    check("infer up2d batch 3 matches reference", ok, why)
    x = rnd(1, 32, 32, 3)
    r = d.post("/v2/models/up2d/infer", T.infer_body(x, nested=True, outputs=False))
    ok, why = close(T.output_array(r.json()), T.up2d_ref(x)) if r.status_code == 200 else (
        False, r.text[:300])
    check("infer up2d 32x32 with nested data, no 'outputs': matches", ok, why)
    x = rnd(1, 2, 2, 2, 8)
    r1 = d.post("/v2/models/gen3d/infer", T.infer_body(x))
    r2 = d.post("/v2/models/gen3d/infer", T.infer_body(x))
    if check("infer gen3d: 200", r1.status_code == 200 and r2.status_code == 200, r1.text[:300]):
        a, b = T.output_array(r1.json()), T.output_array(r2.json())
        check("infer gen3d: shape [1,5,5,5,4] (valid, k3 s2)", list(a.shape) == [1, 5, 5, 5, 4],
              a.shape)
        check("infer gen3d: tanh range and deterministic",
              np.all(np.abs(a) <= 1) and np.array_equal(a, b) and np.abs(a).max() > 0)


def test_datatypes(d):
    xi = RNG.integers(0, 6, size=(1, 3, 2, 3))
    xs = RNG.integers(-3, 4, size=(1, 3, 2, 3))
    xf = (RNG.integers(-8, 9, size=(1, 3, 2, 3)) / 4.0)
    xb = RNG.integers(0, 2, size=(1, 3, 2, 3))
    types = [("FP32", xf, "<f4"), ("FP64", xf, "<f8"), ("FP16", xf, "<f2"), ("BF16", xf, None),
             ("INT8", xs, "<i1"), ("INT16", xs, "<i2"), ("INT32", xs, "<i4"),
             ("INT64", xs, "<i8"), ("UINT8", xi, "<u1"), ("UINT16", xi, "<u2"),
             ("UINT32", xi, "<u4"), ("UINT64", xi, "<u8"), ("BOOL", xb, "?")]
    for dt, x, np_dt in types:
        want = T.up2d_ref(x.astype(np.float32))
        r = d.post("/v2/models/up2d/infer", T.infer_body(x, datatype=dt))
        ok, why = close(T.output_array(r.json()), want) if r.status_code == 200 else (
            False, "%s %s" % (r.status_code, r.text[:300]))
        check("datatype %s as JSON: converted and correct" % dt, ok, why)
        if dt == "BF16":
            raw = (np.asarray(x, dtype="<f4").view("<u4") >> 16).astype("<u2").tobytes()
        else:
            raw = np.asarray(x, dtype=np_dt).tobytes()
        body, hdrs = T.binary_request(raw, x.shape, dt)
        r = d.post("/v2/models/up2d/infer", data=body, headers=hdrs)
        ok, why = close(T.output_array(r.json()), want) if r.status_code == 200 else (
            False, "%s %s" % (r.status_code, r.text[:300]))
        check("datatype %s as binary: converted and correct" % dt, ok, why)
    r = d.post("/v2/models/up2d/infer", T.infer_body(xf, datatype="STRING"))
    check("datatype STRING: 400", r.status_code == 400 and "error" in r.json(), r.text)


def test_binary(d):
    x = rnd(2, 4, 3, 3)
    want = T.up2d_ref(x)
    raw = x.astype("<f4").tobytes()
    body, h = T.binary_request(raw, x.shape, binary_output=True, id="bin1")
    r = d.post("/v2/models/up2d/infer", data=body, headers=h)
    ok = r.status_code == 200 and "Inference-Header-Content-Length" in r.headers
    check("binary in/out (binary_data_output): 200 with Inference-Header-Content-Length", ok,
          "%s %s %s" % (r.status_code, dict(r.headers), r.content[:300]))
    if ok:
        head, data = T.parse_binary_response(r)
        out = head["outputs"][0]
        check("binary out: header has binary_data_size and no data",
              out.get("parameters", {}).get("binary_data_size") == want.size * 4
              and "data" not in out and head.get("id") == "bin1", head)
        check("binary out: body length = header + floats",
              len(r.content) == int(r.headers["Inference-Header-Content-Length"]) + want.size * 4,
              len(r.content))
        ok2, why = close(data.reshape(out["shape"]), want)
        check("binary out: values match reference", ok2, why)
    # per-output binary_data parameter, lower-case header name
    body, h = T.binary_request(raw, x.shape, output_param=True,
                               header_name="inference-header-content-length")
    r = d.post("/v2/models/up2d/infer", data=body, headers=h)
    head, data = T.parse_binary_response(r) if r.status_code == 200 else ({}, None)
    ok, why = (close(data.reshape(head["outputs"][0]["shape"]), want) if data is not None
               else (False, "%s %s" % (r.status_code, r.content[:300])))
    check("binary out via outputs[].parameters.binary_data, lower-case header", ok, why)
    # binary input, JSON output
    body, h = T.binary_request(raw, x.shape)
    r = d.post("/v2/models/up2d/infer", data=body, headers=h)
    ok, why = close(T.output_array(r.json()), want) if r.status_code == 200 else (
        False, r.text[:300])
    check("binary in, JSON out: matches", ok, why)
    # JSON input, binary output
    r = d.post("/v2/models/up2d/infer", T.infer_body(x, binary_output=True))
    head, data = T.parse_binary_response(r) if r.status_code == 200 else ({}, None)
    ok, why = (close(data.reshape(head["outputs"][0]["shape"]), want) if data is not None
               else (False, r.text[:300]))
    check("JSON in, binary out: matches", ok, why)
    # errors
    body, h = T.binary_request(raw[:-4], x.shape)
    r = d.post("/v2/models/up2d/infer", data=body, headers=h)
    check("binary_data_size not shape x element size: 400 naming sizes",
          r.status_code == 400 and any(str(v) in r.json().get("error", "")
                                       for v in (len(raw), len(raw) - 4)), r.text)
    body, h = T.binary_request(raw, x.shape, datatype="FP64")
    r = d.post("/v2/models/up2d/infer", data=body, headers=h)
    check("binary FP64 datatype vs FP32-sized data: 400", r.status_code == 400, r.text)
    j = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                "parameters": {"binary_data_size": len(raw)}}]}).encode()
    r = d.post("/v2/models/up2d/infer", data=j + raw[:100],
               headers={"Inference-Header-Content-Length": str(len(j))})
    check("binary body shorter than binary_data_size: 400", r.status_code == 400, r.text)
    r = d.post("/v2/models/up2d/infer", data=j + raw,
               headers={"Inference-Header-Content-Length": str(len(j) + len(raw) + 10)})
    check("Inference-Header-Content-Length beyond the body: 400", r.status_code == 400, r.text)
    r = d.post("/v2/models/up2d/infer", data=j + raw,
               headers={"Inference-Header-Content-Length": "abc"})
    check("Inference-Header-Content-Length not a number: 400", r.status_code == 400, r.text)


def test_infer_errors(d):
    def post(body, name="up2d", raw=False):
        return d.post("/v2/models/%s/infer" % name, data=body if raw else json.dumps(body))

    x = rnd(1, 4, 4, 3)
    b = T.infer_body(rnd(1, 4, 4, 5))
    r = post(b)
    err = r.json().get("error", "") if r.headers.get("content-type", "").startswith(
        "application/json") else ""
    check("wrong channel count: 400 naming 5 and 3",
          r.status_code == 400 and "5" in err and "3" in err, r.text)
    r = post(T.infer_body(rnd(4, 4, 3)))
    err = r.json().get("error", "")
    check("wrong rank: 400 naming rank 4 and 3",
          r.status_code == 400 and "4" in err and "3" in err and "rank" in err, r.text)
    b = T.infer_body(x)
    b["inputs"][0]["data"] = b["inputs"][0]["data"][:-1]
    r = post(b)
    err = r.json().get("error", "")
    check("data length != shape product: 400 naming 47 and 48",
          r.status_code == 400 and "47" in err and "48" in err, r.text)
    b = T.infer_body(x, name="images")
    r = post(b)
    check("input not named 'input': 400 naming both",
          r.status_code == 400 and "images" in r.json().get("error", "")
          and "input" in r.json().get("error", ""), r.text)
    b = T.infer_body(x)
    b["outputs"] = [{"name": "probs"}]
    r = post(b)
    err = r.json().get("error", "")
    check("output not named 'output': 400 naming both",
          r.status_code == 400 and "probs" in err and "'output'" in err, r.text)
    r = post(b'{"inputs": [', raw=True)
    check("malformed JSON: 400 JSON error", r.status_code == 400 and "error" in r.json(), r.text)
    body = json.dumps(T.infer_body(x, id="ID")).encode().replace(b'"ID"', b'"\xff\xfe\xc3"')
    r = post(body, raw=True)
    try:
        valid = r.content.decode("utf-8") is not None and json.loads(r.content) is not None
    except (UnicodeDecodeError, ValueError):
        valid = False
    check("invalid UTF-8 in the id: 400 and the answer is valid UTF-8 JSON",
          r.status_code == 400 and valid, (r.status_code, r.content[:200]))
    r = post(b"", raw=True)
    check("empty body: 400", r.status_code == 400, r.text)
    r = post({"inputs": []})
    check("no inputs: 400", r.status_code == 400, r.text)
    b = T.infer_body(x)
    b["inputs"].append(dict(b["inputs"][0]))
    r = post(b)
    check("two inputs: 400", r.status_code == 400, r.text)
    b = T.infer_body(x)
    txt = json.dumps(b).replace(json.dumps(b["inputs"][0]["data"][0]), "NaN", 1)
    r = post(txt.encode(), raw=True)
    check("NaN in data: 400", r.status_code == 400, r.text)
    b = T.infer_body(x)
    b["inputs"][0]["data"][3] = "x"
    r = post(b)
    check("string in FP32 data: 400", r.status_code == 400, r.text)
    b = T.infer_body(x)
    b["inputs"][0]["shape"] = [1, 4, 0, 3]
    b["inputs"][0]["data"] = []
    r = post(b)
    check("zero-size dim: 4xx, not 5xx", 400 <= r.status_code < 500, r.text)
    b = T.infer_body(x)
    b["inputs"][0]["shape"] = [1, 4, -4, -3]
    r = post(b)
    check("negative dims: 400", r.status_code == 400, r.text)
    r = post(T.infer_body(rnd(1, 5, 6, 2)), name="fixed")
    err = r.json().get("error", "") if r.status_code != 200 else ""
    check("input height 5 where the model declares 4: 400 naming 5 and 4",
          r.status_code == 400 and "5" in err and "4" in err, "%s %s" % (r.status_code, r.text[:300]))
    r = post(T.infer_body(rnd(3, 4, 6, 2)), name="fixed")
    check("declared shape matched (any batch): 200 shape [3,8,12,2]",
          r.status_code == 200 and r.json()["outputs"][0]["shape"] == [3, 8, 12, 2], r.text[:300])
    r = post(T.infer_body(x), name="nosuch")
    check("infer on unknown model: 404", r.status_code == 404 and "error" in r.json(), r.text)
    r = post(T.infer_body(x), name="broken")
    check("infer on a model that failed to load: 503", r.status_code == 503, r.text)
    r = post(T.infer_body(x))
    check("a good request still answers after errors", r.status_code == 200, r.text[:200])


def test_tfserving(d):
    x = rnd(2, 3, 4, 3)
    want = T.up2d_ref(x)
    r = d.post("/v1/models/up2d:predict", {"instances": x.tolist()})
    ok, why = (close(np.asarray(r.json()["predictions"]), want) if r.status_code == 200
               else (False, r.text[:300]))
    check("TFS instances -> predictions per instance", ok, why)
    r = d.post("/v1/models/up2d:predict", {"instances": [{"input": x[0].tolist()},
                                                          {"input": x[1].tolist()}]})
    ok, why = (close(np.asarray(r.json()["predictions"]), want) if r.status_code == 200
               else (False, r.text[:300]))
    check("TFS instances as named objects -> predictions", ok, why)
    r = d.post("/v1/models/up2d:predict", {"inputs": x.tolist()})
    ok, why = (close(np.asarray(r.json()["outputs"]), want) if r.status_code == 200
               else (False, r.text[:300]))
    check("TFS columnar inputs -> outputs", ok, why)
    r = d.post("/v1/models/up2d:predict", {"inputs": {"input": x.tolist()}})
    ok, why = (close(np.asarray(r.json()["outputs"]), want) if r.status_code == 200
               else (False, r.text[:300]))
    check("TFS columnar named inputs -> outputs", ok, why)
    r = d.post("/v1/models/up2d/versions/1:predict", {"instances": x.tolist()})
    ok, why = (close(np.asarray(r.json()["predictions"]), want) if r.status_code == 200
               else (False, r.text[:300]))
    check("TFS /versions/1:predict", ok, why)
    r = d.post("/v1/models/up2d:predict", {"instances": [x[0].tolist(), x[0, :2].tolist()]})
    check("TFS ragged instances: 400", r.status_code == 400 and "error" in r.json(), r.text)
    r = d.post("/v1/models/up2d:predict", {"foo": 1})
    check("TFS body without instances/inputs: 400", r.status_code == 400, r.text)
    r = d.post("/v1/models/nosuch:predict", {"instances": x.tolist()})
    check("TFS predict unknown model: 404", r.status_code == 404, r.text)
    r = d.post("/v1/models/up2d:classify", {"instances": x.tolist()})
    check("TFS :classify: 404", r.status_code == 404, r.text)
    r = d.get("/v1/models/up2d")
    j = r.json()
    st = (j.get("model_version_status") or [{}])[0]
    check("TFS status: version 1 AVAILABLE",
          r.status_code == 200 and st.get("version") == "1" and st.get("state") == "AVAILABLE"
          and isinstance(st.get("status"), dict), r.text)
    r = d.get("/v1/models/up2d/metadata")
    j = r.json()
    try:
        sd = j["metadata"]["signature_def"]["signature_def"]["serving_default"]
        dims = [int(v["size"]) for v in sd["inputs"]["input"]["tensor_shape"]["dim"]]
        ok = (j["model_spec"]["name"] == "up2d" and dims == [-1, -1, -1, 3]
              and sd["outputs"]["output"]["dtype"] == "DT_FLOAT")
    except (KeyError, TypeError, ValueError):
        ok = False
    check("TFS metadata: signature_def serving_default", r.status_code == 200 and ok, r.text)
    r = d.get("/v1/models/nosuch")
    check("TFS status of unknown model: 404", r.status_code == 404, r.text)


def test_shape(d):
    r = d.post("/v2/models/up2d/shape", {"input_shape": [None, 32, 32, 3]})
    params = 3 * 3 * 2 * 3 + 2        # Keras: kernel 3x3, 3 -> 2 channels, and the bias
    check("model shape up2d [null,32,32,3] -> [-1,64,64,2], with its model.summary() table",
          r.status_code == 200 and r.json() == {
              "model_name": "up2d", "input_shape": [-1, 32, 32, 3],
              "output_shape": [-1, 64, 64, 2], "total_params": params,
              "layers": [{"name": "input", "class_name": "InputLayer",
                          "output_shape": [-1, 32, 32, 3], "params": 0},
                         {"name": "up2d", "class_name": "Conv2DTranspose",
                          "output_shape": [-1, 64, 64, 2], "params": params}]}, r.text)
    r = d.post("/v2/models/up2d/shape", {"input_shape": [4, None, 7, 3]})
    check("model shape up2d with unknown H",
          r.status_code == 200 and r.json().get("output_shape") == [4, -1, 14, 2], r.text)
    r = d.post("/v2/models/c2vop/shape", {"input_shape": [1, 3, 4, 2]})
    want = [1, T.keras_length(3, 3, 3, 1, "valid", 2), T.keras_length(4, 3, 2, 1, "valid", 1), 3]
    check("model shape with output_padding: %s" % want,
          r.status_code == 200 and r.json().get("output_shape") == want, r.text)
    r = d.post("/v2/models/up2d/shape", {"input_shape": [None, 32, 32, 4]})
    check("model shape with wrong channels: 400", r.status_code == 400, r.text)
    r = d.post("/v2/models/up2d/shape", {"input_shape": [None, 32, 3]})
    check("model shape with wrong rank: 400", r.status_code == 400, r.text)
    r = d.post("/v2/models/nosuch/shape", {"input_shape": [None, 32, 32, 3]})
    check("model shape unknown model: 404", r.status_code == 404, r.text)
    cfg = {"filters": 5, "kernel_size": [4, 3], "strides": [3, 2], "padding": "valid",
           "dilation_rate": 1}
    r = d.post("/v2/shape", {"class_name": "Conv2DTranspose", "config": cfg,
                             "input_shape": [2, 10, None, 7]})
    want = [2, T.keras_length(10, 4, 3, 1, "valid"), -1, 5]
    check("stateless shape Conv2DTranspose valid -> %s" % want,
          r.status_code == 200 and r.json().get("output_shape") == want
          and r.json().get("input_shape") == [2, 10, -1, 7] and "model_name" not in r.json(),
          r.text)
    layers = r.json().get("layers") or [{}, {}]
    check("stateless shape: the table's layer row, params from the input's 7 channels",
          layers[1].get("class_name") == "Conv2DTranspose"
          and layers[1].get("output_shape") == want and layers[1].get("params") == 4 * 3 * 5 * 7 + 5
          and layers[0].get("class_name") == "InputLayer"
          and r.json().get("total_params") == 4 * 3 * 5 * 7 + 5, r.text)
    r = d.post("/v2/shape", {"class_name": "Conv2DTranspose", "config": cfg,
                             "input_shape": [2, 10, 4, None]})
    check("stateless shape with unknown channels: params null",
          r.status_code == 200 and r.json()["layers"][1]["params"] is None
          and r.json()["total_params"] is None, r.text)
    r = d.post("/v2/shape", {"class_name": "Conv1DTranspose",
                             "config": {"filters": 2, "kernel_size": 3, "strides": 1,
                                        "padding": "valid", "dilation_rate": 3},
                             "input_shape": [1, 10, 4]})
    check("stateless shape with dilation: 10 + (3-1)*3 = 16",
          r.status_code == 200 and r.json().get("output_shape") == [1, 16, 2], r.text)
    r = d.post("/v2/shape", {"class_name": "Conv3DTranspose",
                             "config": {"filters": 4, "kernel_size": 3, "strides": 2,
                                        "padding": "same", "data_format": "channels_first"},
                             "input_shape": [None, 8, 5, 6, 7]})
    check("stateless shape Conv3DTranspose channels_first",
          r.status_code == 200 and r.json().get("output_shape") == [-1, 4, 10, 12, 14], r.text)
    r = d.post("/v2/shape", {"class_name": "Conv1DTranspose",
                             "config": {"filters": 2, "kernel_size": 3, "padding": "causal"},
                             "input_shape": [1, 10, 4]})
    check("stateless shape padding causal: 400 naming causal",
          r.status_code == 400 and "causal" in r.json().get("error", ""), r.text)
    r = d.post("/v2/shape", {"class_name": "Conv2DTranspose",
                             "config": {"filters": 2, "kernel_size": 3, "strides": 2,
                                        "output_padding": 2},
                             "input_shape": [1, 10, 10, 4]})
    check("stateless shape output_padding >= strides: 400 naming output_padding",
          r.status_code == 400 and "output_padding" in r.json().get("error", ""), r.text)
    r = d.post("/v2/shape", {"class_name": "Conv5DTranspose", "config": {"filters": 2,
                                                                         "kernel_size": 3},
                             "input_shape": [1, 10, 4]})
    check("stateless shape unknown class: 400", r.status_code == 400, r.text)
    r = d.post("/v2/shape", {"class_name": "Conv2DTranspose",
                             "config": {"kernel_size": 3}, "input_shape": [1, 10, 10, 4]})
    check("stateless shape without filters: 400", r.status_code == 400, r.text)
    r = d.post("/v2/shape", {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Conv2DTranspose", "config": {"name": "up", "filters": 2,
                                                     "kernel_size": 3}}]},
        "input_shape": [1, 10, 10, 4]})
    rows = r.json().get("layers", []) if r.status_code == 200 else []
    check("stateless shape of a Sequential: each layer's shape from its config",
          [row.get("output_shape") for row in rows] == [[1, 10, 10, 4], [1, 12, 12, 2]],
          r.text)
    r = d.post("/v2/shape", data=b"[1,2]")
    check("stateless shape with a non-object body: 400", r.status_code == 400, r.text)


def op_call(d, rank, inp, filt, out_shape, strides, padding, fmt=None, dil=None, flat=False):
    def t(a):
        a = np.asarray(a)
        return {"shape": list(a.shape), "data": a.ravel().tolist()} if flat else a.tolist()
    body = {"input": t(inp), "filters": t(filt), "output_shape": out_shape,
            "strides": strides, "padding": padding}
    if fmt:
        body["data_format"] = fmt
    if dil is not None:
        body["dilations"] = dil
    return d.post("/v2/ops/conv%dd_transpose" % rank, body)


def op_result(r):
    j = r.json()
    return np.asarray(j["data"], dtype=np.float64).reshape(j["shape"])


def test_ops(d):
    # conv2d_transpose NHWC SAME, output 5 from n=3 s=2 (crop from pad_before=1)
    x, w = rnd(2, 3, 4, 3), rnd(3, 3, 2, 3)
    want = T.conv_transpose_ref(x, w, [2, 2], [1, 1], "same", [5, 8])
    r = op_call(d, 2, x, w, [2, 5, 8, 2], 2, "SAME")
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv2d_transpose NHWC SAME odd output (crop) matches", ok, why)
    r = op_call(d, 2, x, w, [2, 5, 8, 2], [1, 2, 2, 1], "SAME", "NHWC", flat=True)
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv2d_transpose {shape,data} form, strides of length N+2", ok, why)
    # VALID, output beyond full -> zero-filled tail
    want = T.conv_transpose_ref(x, w, [2, 2], [1, 1], "valid", [8, 10])
    r = op_call(d, 2, x, w, [2, 8, 10, 2], [2, 2], "VALID")
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv2d_transpose VALID with output past 'full' (zero fill)", ok, why)
    # NCHW
    xc = np.moveaxis(x, -1, 1)
    want = np.moveaxis(T.conv_transpose_ref(x, w, [2, 2], [1, 1], "same", [6, 8]), -1, 1)
    r = op_call(d, 2, xc, w, [2, 2, 6, 8], [1, 1, 2, 2], "SAME", "NCHW")
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv2d_transpose NCHW matches", ok, why)
    # conv1d with dilation
    x1, w1 = rnd(1, 6, 2), rnd(3, 4, 2)
    want = T.conv_transpose_ref(x1, w1, [1], [2], "valid", [10])
    r = op_call(d, 1, x1, w1, [1, 10, 4], 1, "VALID", "NWC", dil=2)
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv1d_transpose dilation 2 VALID matches", ok, why)
    # conv1d strides and dilations together (allowed by the op)
    want = T.conv_transpose_ref(x1, w1, [2], [2], "same", [12])
    r = op_call(d, 1, x1, w1, [1, 12, 4], [2], "SAME", dil=[2])
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv1d_transpose stride 2 + dilation 2 SAME matches", ok, why)
    x1c = np.moveaxis(x1, -1, 1)
    want = np.moveaxis(T.conv_transpose_ref(x1, w1, [3], [1], "same", [18]), -1, 1)
    r = op_call(d, 1, x1c, w1, [1, 4, 18], 3, "SAME", "NCW")
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv1d_transpose NCW matches", ok, why)
    # conv3d
    x3, w3 = rnd(1, 2, 3, 2, 2), rnd(2, 3, 3, 3, 2)
    want = T.conv_transpose_ref(x3, w3, [2, 1, 2], [1, 1, 1], "valid", [4, 5, 5])
    r = op_call(d, 3, x3, w3, [1, 4, 5, 5, 3], [2, 1, 2], "VALID", "NDHWC")
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv3d_transpose VALID matches", ok, why)
    x3c = np.moveaxis(x3, -1, 1)
    want = np.moveaxis(T.conv_transpose_ref(x3, w3, [1, 2, 2], [1, 1, 1], "same", [2, 6, 4]),
                       -1, 1)
    r = op_call(d, 3, x3c, w3, [1, 3, 2, 6, 4], [1, 2, 2], "SAME", "NCDHW", flat=True)
    ok, why = close(op_result(r), want) if r.status_code == 200 else (False, r.text)
    check("op conv3d_transpose NCDHW SAME matches", ok, why)
    # errors
    errs = [
        ("output_shape of wrong length", dict(out=[2, 6, 8])),
        ("input depth != filter in_channels", dict(filt=rnd(3, 3, 2, 4))),
        ("output depth != filter out_channels", dict(out=[2, 6, 8, 3])),
        ("bad padding", dict(padding="FULL")),
        ("bad data_format", dict(fmt="NWHC")),
        ("1-D data_format on the 2-D op", dict(fmt="NWC")),
        ("inconsistent output_shape (SAME)", dict(out=[2, 9, 8, 2])),
        ("inconsistent output_shape (VALID)", dict(out=[2, 4, 8, 2], padding="VALID")),
        ("strides with bad length", dict(strides=[2, 2, 2])),
        ("batch differs from input", dict(out=[3, 6, 8, 2])),
    ]
    for what, kw in errs:
        r = op_call(d, 2, x, kw.get("filt", w), kw.get("out", [2, 6, 8, 2]),
                    kw.get("strides", 2), kw.get("padding", "SAME"), kw.get("fmt"))
        ok = r.status_code == 400
        try:
            ok = ok and bool(r.json().get("error"))
        except ValueError:
            ok = False
        check("op error %s: 400 with message" % what, ok, "%s %s" % (r.status_code, r.text))
    r = d.post("/v2/ops/conv2d_transpose", {"filters": w.tolist(), "output_shape": [2, 6, 8, 2],
                                            "strides": 2, "padding": "SAME"})
    check("op error missing input: 400", r.status_code == 400, r.text)
    r = d.post("/v2/ops/conv4d_transpose", {})
    check("unknown op: 404", r.status_code == 404, r.text)
    r = d.get("/v2/ops/conv2d_transpose")
    check("GET on an op: 405", r.status_code == 405, r.text)


def test_stats(d):
    def stats(name):
        r = d.get("/v2/models/%s/stats" % name)
        return r, (r.json()["model_stats"][0] if r.status_code == 200 else {})

    r, before = stats("up1d")
    check("stats up1d: 200 with one entry", r.status_code == 200
          and len(r.json()["model_stats"]) == 1 and before.get("name") == "up1d", r.text)
    x = rnd(1, 4, 2)
    for _ in range(3):
        d.post("/v2/models/up1d/infer", T.infer_body(x))
    d.post("/v2/models/up1d/infer", T.infer_body(rnd(1, 4, 3)))      # fails: channels
    r, after = stats("up1d")
    try:
        isb, isa = before["inference_stats"], after["inference_stats"]
        ok = (after["inference_count"] - before["inference_count"] == 3
              and after["execution_count"] - before["execution_count"] == 3
              and isa["success"]["count"] - isb["success"]["count"] == 3
              and isa["fail"]["count"] - isb["fail"]["count"] == 1
              and isa["success"]["ns"] > isb["success"]["ns"]
              and after["last_inference"] > 0 and after["version"] == "1")
        keys = all(k in isa and "count" in isa[k] and "ns" in isa[k]
                   for k in ("success", "fail", "queue", "compute_input", "compute_infer",
                             "compute_output"))
    except (KeyError, TypeError) as e:
        ok, keys = False, str(e)
    check("stats up1d: counts after 3 good + 1 bad inference", ok, (before, after))
    check("stats: inference_stats has every section with count/ns", keys is True, after)
    r = d.get("/v2/models/stats")
    names = {s["name"] for s in r.json().get("model_stats", [])} if r.status_code == 200 else set()
    check("stats for all models lists shipped and generated models",
          {"up1d", "up2d", "gen3d", "c2v"} <= names, names)
    r = d.get("/v2/models/up1d/versions/1/stats")
    check("stats /versions/1 form: 200", r.status_code == 200, r.text)
    r = d.get("/v2/models/nosuch/stats")
    check("stats of unknown model: 404", r.status_code == 404, r.text)


def test_repository(d):
    def index():
        r = d.post("/v2/repository/index")
        return {e["name"]: e for e in r.json()} if r.status_code == 200 else {}

    idx = index()
    check("repository index: up1d READY version 1",
          idx.get("up1d", {}).get("state") == "READY" and idx["up1d"].get("version") == "1",
          idx.get("up1d"))
    b = idx.get("broken", {})
    check("repository index: broken model UNAVAILABLE with a reason",
          b.get("state") == "UNAVAILABLE" and "broken" in b.get("reason", ""), b)
    check("repository index lists every model file", set(SPECS) | {"up1d", "up2d", "gen3d"}
          <= set(idx), sorted(idx))
    x = rnd(1, 4, 2)
    r = d.post("/v2/repository/models/up1d/unload")
    check("unload up1d: 200", r.status_code == 200, r.text)
    r = d.post("/v2/models/up1d/infer", T.infer_body(x))
    check("infer after unload: 503", r.status_code == 503, r.text)
    r = d.get("/v2/models/up1d/ready")
    check("model ready after unload: 503", r.status_code == 503, r.text)
    e = index().get("up1d", {})
    check("index after unload: UNAVAILABLE 'unloaded'",
          e.get("state") == "UNAVAILABLE" and e.get("reason") == "unloaded", e)
    r = d.get("/v2/health/ready")
    check("server still ready with one model unloaded", r.status_code == 200, r.text)
    r = d.post("/v2/repository/models/up1d/load")
    check("load up1d: 200", r.status_code == 200, r.text)
    e = index().get("up1d", {})
    check("index after load: READY", e.get("state") == "READY" and e.get("reason") == "", e)
    r = d.post("/v2/models/up1d/infer", T.infer_body(x))
    ok, why = close(T.output_array(r.json()), T.up1d_ref(x)) if r.status_code == 200 else (
        False, r.text)
    check("infer after load: correct", ok, why)
    r = d.get("/v2/models/up1d")
    check("metadata after reload lists the new version",
          r.status_code == 200 and r.json().get("versions") == [e.get("version")]
          and e.get("version") != "1", (r.text, e))
    r = d.post("/v2/repository/models/nosuch/unload")
    check("unload unknown model: 404", r.status_code == 404, r.text)
    r = d.post("/v2/repository/models/nosuch/load")
    check("load of a model with no file: 4xx", 400 <= r.status_code < 500, r.text)
    check("load of a model with no file leaves no phantom entry in the index",
          "nosuch" not in index(), index().get("nosuch"))
    r = d.get("/v2/models/nosuch/ready")
    check("ready of a model with no file after a failed load: 404", r.status_code == 404,
          "%s %s" % (r.status_code, r.text))
    r = d.get("/v2/repository/index")
    check("GET on repository index: 405", r.status_code == 405, r.text)


def test_metrics(d):
    r = d.get("/metrics")
    check("metrics: 200 text/plain", r.status_code == 200
          and r.headers.get("content-type", "").startswith("text/plain"), r.status_code)
    t = r.text
    for fam in ("deconvd_requests_total", "deconvd_request_duration_seconds",
                "deconvd_queue_duration_seconds", "deconvd_compute_duration_seconds",
                "deconvd_inflight_requests", "deconvd_queue_depth", "deconvd_models_loaded",
                "deconvd_build_info", "process_resident_memory_bytes",
                "process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds"):
        check("metrics has family %s" % fam, ("# TYPE %s " % fam) in t, fam)
    lines = t.splitlines()

    def value(prefix):
        for ln in lines:
            if ln.startswith(prefix + " "):
                return float(ln.rsplit(" ", 1)[1])
        return None

    v = value('deconvd_requests_total{model="up2d",endpoint="infer",code="200"}')
    check("requests_total counts up2d infer 200", v is not None and v >= 10, v)
    v = value('deconvd_requests_total{model="up2d",endpoint="infer",code="400"}')
    check("requests_total counts up2d infer 400", v is not None and v >= 1, v)
    v = value('deconvd_request_duration_seconds_count{model="up2d"}')
    check("request duration histogram has up2d observations", v is not None and v >= 10, v)
    v = value('deconvd_request_duration_seconds_bucket{model="up2d",le="+Inf"}')
    check("histogram +Inf bucket equals count",
          v == value('deconvd_request_duration_seconds_count{model="up2d"}'), v)
    good = len(SPECS) + len(EXTRA_DOCS) + 3   # every generated and shipped model but 'broken'
    v = value("deconvd_models_loaded")
    check("models_loaded gauge = %d" % good, v == good, v)
    check("build_info carries the version label",
          any(ln.startswith('deconvd_build_info{version="') and ln.endswith(" 1")
              for ln in lines), "")
    v = value("process_resident_memory_bytes")
    check("process_resident_memory_bytes > 0", v is not None and v > 0, v)
    v = value("process_open_fds")
    check("process_open_fds > 0", v is not None and v > 0, v)
    check("no unknown-model label for a 404 on nosuch",
          'model="nosuch"' not in t, [ln for ln in lines if "nosuch" in ln])
    promtool = shutil.which("promtool")
    if not promtool:
        T.R.skip("promtool check metrics", "promtool not installed (Debian package "
                 "'prometheus'); skipping the exposition-format lint")
        return
    p = subprocess.run([promtool, "check", "metrics"], input=r.content, capture_output=True,
                       timeout=30)
    check("promtool check metrics: clean", p.returncode == 0 and not p.stdout.strip()
          and not p.stderr.strip(), (p.returncode, p.stdout.decode(), p.stderr.decode()))


def test_status_codes(d):
    cases = [
        ("GET", "/nope", 404), ("GET", "/v2/nope", 404), ("GET", "/v3/models/up2d", 404),
        ("GET", "/v2/models/up2d/explode", 404),
        ("POST", "/v2/models/%2e%2e%2fetc/infer", 404),
        ("GET", "/v2/models/%2e%2e%2fetc", 404),
        ("GET", "/v2/models/%2e%2e/ready", 404),
        ("GET", "/v2/models/..%2fup2d", 404),
        ("GET", "/v2/models/.hidden", 404),
        ("POST", "/v2/models/..%2F..%2Fetc%2Fpasswd/infer", 404),
        ("GET", "/v1/models/..%2fup2d", 404),
        ("DELETE", "/v2/health/live", 405), ("POST", "/v2/health/ready", 405),
        ("GET", "/v2/models/up2d/infer", 405), ("PUT", "/metrics", 405),
        ("POST", "/v2/models/up2d", 405), ("GET", "/v2/shape", 405),
        ("GET", "/v1/models/up2d:predict", 405),
    ]
    for method, path, want in cases:
        try:
            r = requests.request(method, d.url(path), timeout=10, data=b"{}"
                                 if method in ("POST", "PUT") else None)
            body_ok = r.headers.get("content-type", "").startswith("application/json") and \
                "error" in r.json()
            got = r.status_code
        except (requests.RequestException, ValueError) as e:
            got, body_ok = str(e), False
        check("%s %s: %d with JSON error" % (method, path, want), got == want and body_ok,
              "got %s %s" % (got, r.text[:200] if not isinstance(got, str) else ""))
    r = requests.delete(d.url("/v2/health/live"), timeout=10)
    check("405 carries an Allow header", r.headers.get("Allow") == "GET", dict(r.headers))
    for path in ("/v2/repository/models/%2e%2e/load", "/v2/repository/models/..%2fx/unload"):
        r = requests.post(d.url(path), timeout=10)
        check("POST %s: 4xx (no traversal)" % path, r.status_code in (400, 404), r.status_code)
    # 413: Content-Length over the limit, answered before the body is sent
    # to a client that waits for 100 Continue
    raw = T.raw_http(d.port, ("POST /v2/models/up2d/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Expect: 100-continue\r\n"
                              "Content-Length: %d\r\n\r\n" % (MAX_BODY * 50)).encode(),
                     timeout=5)
    check("413 from Content-Length alone (Expect: 100-continue), before any body byte",
          raw.startswith(b"HTTP/1.1 413") and b"max_body_bytes" in raw, raw[:300])
    big = b" " * (MAX_BODY + 10)
    r = requests.post(d.url("/v2/models/up2d/infer"), data=big, timeout=30)
    check("413 for a body over max_body_bytes", r.status_code == 413 and "error" in r.json(),
          r.status_code)

    def chunks():
        for _ in range(MAX_BODY // 65536 + 4):
            yield b" " * 65536
    try:
        r = requests.post(d.url("/v2/models/up2d/infer"), data=chunks(), timeout=30)
        code = r.status_code
    except requests.RequestException as e:
        code = str(e)
    check("413 for a chunked body over max_body_bytes", code == 413, code)
    x = rnd(1, 2, 2, 3)
    r = d.post("/v2/models/up2d/infer", T.infer_body(x))
    check("daemon serves after 413s", r.status_code == 200, r.text[:200])


def test_concurrent_clients(d):
    """A handful of concurrent requests on different models all answer right."""
    jobs = []
    for i in range(12):
        name = ["c2v", "c1dil", "c3", "up2d"][i % 4]
        shape = {"c2v": (1, 3, 3, 2), "c1dil": (2, 5, 3), "c3": (1, 2, 3, 2, 2),
                 "up2d": (1, 6, 6, 3)}[name]
        jobs.append((name, rnd(*shape)))
    results = [None] * len(jobs)

    def run(i):
        name, x = jobs[i]
        try:
            results[i] = d.post("/v2/models/%s/infer" % name, T.infer_body(x), timeout=60)
        except requests.RequestException as e:
            results[i] = e
    ths = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in ths:
        t.start()
    for t in ths:
        t.join(T.t(90))
    bad = []
    for (name, x), r in zip(jobs, results):
        if not isinstance(r, requests.Response) or r.status_code != 200:
            bad.append((name, getattr(r, "status_code", r)))
            continue
        want = T.up2d_ref(x) if name == "up2d" else ref_for(name, x)
        ok, why = close(T.output_array(r.json()), want)
        if not ok:
            bad.append((name, why))
    check("12 concurrent requests on 4 models all correct", not bad, bad)


def test_auth():
    tok = "s3cret-token"
    with T.Daemon(config={"auth_token": tok}, shipped=["up1d"], name="auth daemon") as d:
        d.start()
        x = rnd(1, 3, 2)
        if not T.answers_inference(d, "up1d", x):
            return
        for path in ("/v2/health/live", "/v2/health/ready"):
            r = requests.get(d.url(path), timeout=10)
            check("auth: %s open without token" % path, r.status_code == 200, r.status_code)
        for method, path in (("GET", "/v2"), ("GET", "/v2/models/up1d"), ("GET", "/metrics"),
                             ("POST", "/v2/repository/index"), ("GET", "/v1/models/up1d"),
                             ("POST", "/v2/models/up1d/infer"), ("GET", "/nope")):
            r = requests.request(method, d.url(path), timeout=10,
                                 data=json.dumps(T.infer_body(x)) if method == "POST" else None)
            check("auth: %s %s without token -> 401" % (method, path),
                  r.status_code == 401 and "error" in r.json()
                  and r.headers.get("WWW-Authenticate", "").startswith("Bearer"),
                  "%s %s" % (r.status_code, r.text[:200]))
        for bad in ("Bearer wrong", "Bearer " + tok[:-1], "Bearer " + tok + "x", tok,
                    "Basic " + tok, "Bearer "):
            r = requests.get(d.url("/v2/models/up1d"), headers={"Authorization": bad},
                             timeout=10)
            check("auth: Authorization %r -> 401" % bad, r.status_code == 401, r.status_code)
        for good in ("bearer " + tok, "BEARER  " + tok):   # RFC 7235: scheme case-insensitive
            r = requests.get(d.url("/v2/models/up1d"), headers={"Authorization": good},
                             timeout=10)
            check("auth: Authorization %r -> 200" % good.replace(tok, "<token>"),
                  r.status_code == 200, r.status_code)
        r = d.post("/v2/models/up1d/infer", T.infer_body(x))
        ok, why = close(T.output_array(r.json()), T.up1d_ref(x)) if r.status_code == 200 else (
            False, r.text)
        check("auth: infer with the right token works", ok, why)
        r = d.get("/metrics")
        check("auth: metrics with the right token: 200", r.status_code == 200, r.status_code)
        check("auth: the token does not appear in the log", tok not in d.log(), "")


NEG_ZERO = re.compile(r"(?<![\w.])-0(?:\.0*)?(?:[eE][-+]?\d+)?(?![\w.])")


def test_relu_zeros(d):
    """up2d ends in relu: every output below zero is +0, as TensorFlow
    answers (tf.nn.relu = max(x, 0)); it used to be -0 (0 * x)."""
    x = rnd(1, 6, 6, 3) * 4
    want = T.up2d_ref(x)
    zeros = int((want == 0).sum())
    body, h = T.binary_request(x.astype("<f4").tobytes(), x.shape, binary_output=True)
    r = d.post("/v2/models/up2d/infer", data=body, headers=h)
    head, data = T.parse_binary_response(r)
    check("relu zeros: binary answer (%d of %d outputs are relu zeros)" % (zeros, want.size),
          r.status_code == 200 and data is not None and zeros > 10, (r.status_code, zeros))
    if data is not None:
        bits = np.frombuffer(data.tobytes(), dtype="<u4")
        neg0 = int((bits == 0x80000000).sum())
        check("relu zeros: binary output has no -0 (sign bit set on 0): %d found" % neg0,
              neg0 == 0 and int((bits == 0).sum()) == zeros, (neg0, int((bits == 0).sum())))
    r = d.post("/v2/models/up2d/infer", body=T.infer_body(x))
    tokens = NEG_ZERO.findall(r.text)
    check("relu zeros: JSON output writes 0, never -0 (%d -0 tokens)" % len(tokens),
          r.status_code == 200 and not tokens and close(T.output_array(r.json()), want)[0],
          (r.status_code, tokens[:5]))
    r = d.post("/v1/models/up2d:predict", data=json.dumps({"instances": x.tolist()}))
    tokens = NEG_ZERO.findall(r.text)
    check("relu zeros: TF Serving JSON writes 0, never -0 (%d -0 tokens)" % len(tokens),
          r.status_code == 200 and not tokens, (r.status_code, tokens[:5], r.text[:200]))


def main():
    docs, npy = model_docs()
    # 'broken' fails to load on purpose: strict readiness (not ready while a
    # model failed, tests/robustness/test_models_dir.py) is not what this tests
    with T.Daemon(config={"max_body_bytes": MAX_BODY, "workers": 2, "strict_readiness": False},
                  models=docs, npy=npy, shipped=True, name="api daemon") as d:
        d.start()
        sync = (test_health_and_server, test_metadata, test_config, test_shape)
        deferred = (test_infer_numerics, test_datatypes, test_binary, test_infer_errors,
                    test_tfserving, test_ops, test_stats, test_concurrent_clients,
                    test_status_codes, test_metrics, test_repository, test_relu_zeros)
        for fn in sync:
            T.R.run(fn, d)
        if T.answers_inference(d, "up1d", rnd(1, 3, 2)):
            for fn in deferred:
                T.R.run(fn, d)
        else:
            T.R.skip(", ".join(f.__name__ for f in deferred),
                     "inference answers hang; see the failed preflight check above")
        check("api daemon alive after the API tests", d.alive(), d.log()[-2000:])
    T.R.run(test_auth)


if __name__ == "__main__":
    T.main_guard(main)
