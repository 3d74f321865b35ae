#!/usr/bin/python3
"""test_png.py — PNG answers (Accept: image/png), black-box.

Generated models with 1, 3 and 4 output channels (sigmoid, tanh, a file's
"image" range, channels_first), the shipped ones that are no picture (up2d:
2 channels, up1d: 1-D, gen3d: 3-D), and one whose range is unknown (relu).
Every PNG is decoded by tests/png_ref.py (zlib + struct, and Pillow) and
compared with the pixels NumPy maps the JSON answer's floats to; batches of
1, 2, 3 and 5 make grids. Content negotiation as RFC 9110 has it, the 406
answers, KServe binary and TF Serving asking for PNG, shared-memory output,
the size bound against max_response_bytes, and the same bytes through curl
and Node's fetch. Prints one line per check and "N passed, N failed".
"""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from multiprocessing import shared_memory

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check  # noqa: E402

import png_ref  # noqa: E402  (tests/, on the path through dcvtest)

RNG = np.random.default_rng(2024)
PNG = {"Accept": "image/png"}


def rnd(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------ models

def model(name, filters, cin, act, k=3, s=2, padding="same", cf=False, image=None):
    """(doc, npy files, kernel, bias) of a Conv2DTranspose model."""
    ker = rnd(k, k, filters, cin, scale=0.7)
    b = rnd(filters, scale=0.2)
    doc = {"class_name": "Conv2DTranspose",
           "config": {"name": name, "filters": filters, "kernel_size": k, "strides": s,
                      "padding": padding, "activation": act,
                      "data_format": "channels_first" if cf else "channels_last"},
           "weights": {"kernel": name + ".k.npy", "bias": name + ".b.npy"}}
    if image is not None:
        doc["image"] = image
    return doc, {name + ".k.npy": ker, name + ".b.npy": b}


# name: (filters, in channels, activation, channels_first, image key, range)
MODELS = {
    "gray": (1, 2, "sigmoid", False, None, (0, 1)),
    "rgb": (3, 4, "tanh", False, None, (-1, 1)),
    "rgba": (4, 3, "sigmoid", True, None, (0, 1)),
    "ranged": (3, 2, "linear", False, {"range": [-2, 2]}, (-2, 2)),
    "unbounded": (3, 2, "relu", False, None, None),
}


def all_models():
    docs, npy = {}, {}
    for name, (f, cin, act, cf, image, _) in MODELS.items():
        doc, files = model(name, f, cin, act, cf=cf, image=image)
        docs[name], npy = doc, {**npy, **files}
    return docs, npy


def input_for(name, batch, h=5, w=6):
    f, cin, act, cf, image, rng = MODELS[name]
    return rnd(batch, cin, h, w) if cf else rnd(batch, h, w, cin)


def is_error(r, code, *words):
    try:
        msg = r.json().get("error", "")
    except ValueError:
        return False, "%s not JSON: %r" % (r.status_code, r.text[:300])
    ok = r.status_code == code and all(w in msg for w in words)
    return ok, "%s %s" % (r.status_code, r.text[:500])


def picture_of(d, name, x, headers=PNG, path=None, body=None):
    """(response, floats of the JSON answer) for x asked both ways."""
    path = path or "/v2/models/%s/infer" % name
    rj = d.post("/v2/models/%s/infer" % name, body=T.infer_body(x))
    floats = T.output_array(rj.json()) if rj.status_code == 200 else None
    r = d.post(path, body=body or T.infer_body(x), headers=headers)
    return r, floats


def png_matches(data, floats, lo, hi, cf):
    """(ok, detail): the PNG decodes to the pixels of floats."""
    try:
        why = png_ref.check_file(data, png_ref.expected_pixels(floats, lo, hi, cf))
    except Exception as e:          # a file that does not decode fails the check
        why = "%s: %s" % (type(e).__name__, e)
    return why is None, why


# ------------------------------------------------------------------ tests

def test_pictures(d):
    """Every picture model, batches 1, 2, 3, 5: the grid of the JSON answer's
    pixels, and the pixels of the NumPy reference within one level."""
    for name in ("gray", "rgb", "rgba", "ranged"):
        f, cin, act, cf, image, (lo, hi) = MODELS[name]
        for batch in (1, 2, 3, 5):
            x = input_for(name, batch)
            r, floats = picture_of(d, name, x)
            ok = r.status_code == 200 and r.headers.get("Content-Type") == "image/png"
            check("%s batch %d: 200 image/png, Vary: Accept" % (name, batch),
                  ok and r.headers.get("Vary") == "Accept", (r.status_code, r.headers,
                                                              r.text[:300]))
            if not ok or floats is None:
                continue
            good, why = png_matches(r.content, floats, lo, hi, cf)
            check("%s batch %d: PNG decodes to the JSON answer's pixels" % (name, batch),
                  good, why)
            px, info = png_ref.decode_png(r.content)
            rows, cols = png_ref.grid_shape(batch)
            th, tw = floats.shape[2:4] if cf else floats.shape[1:3]
            want = (rows * (th + 2) - 2, cols * (tw + 2) - 2, f)
            check("%s batch %d: %d x %d grid of %dx%d tiles, 2 px apart: %s" % (
                name, batch, rows, cols, th, tw, px.shape), px.shape == want, want)
            kernel = np.load(os.path.join(d.models_dir, name + ".k.npy"))
            bias = np.load(os.path.join(d.models_dir, name + ".b.npy"))
            ref = T.keras_ref(x, kernel, bias, [2, 2], "same", activation=act,
                              channels_first=cf)
            diff = np.abs(png_ref.expected_pixels(ref, lo, hi, cf).astype(int) - px.astype(int))
            check("%s batch %d: within one level of the NumPy reference's pixels (max %d)" % (
                name, batch, diff.max()), diff.max() <= 1, diff.max())


def test_forms(d):
    """TF Serving, KServe binary output and versioned paths give the same PNG."""
    x = input_for("rgb", 2)
    r, floats = picture_of(d, "rgb", x)
    want = r.content
    tfs = d.post("/v1/models/rgb:predict", data=json.dumps({"instances": x.tolist()}),
                 headers=PNG)
    check("TF Serving :predict answers the same PNG", tfs.status_code == 200 and
          tfs.headers.get("Content-Type") == "image/png" and tfs.content == want,
          (tfs.status_code, tfs.text[:300]))
    tfc = d.post("/v1/models/rgb:predict", data=json.dumps({"inputs": x.tolist()}),
                 headers=PNG)
    check("TF Serving columnar :predict answers the same PNG",
          tfc.status_code == 200 and tfc.content == want, (tfc.status_code, tfc.text[:300]))
    raw, hdrs = T.binary_request(x.tobytes(), x.shape, binary_output=True)
    rb = d.post("/v2/models/rgb/infer", data=raw, headers={**hdrs, **PNG})
    check("binary input + binary_data_output + Accept: image/png: the PNG (Accept names "
          "the media type)", rb.status_code == 200 and rb.content == want and
          "Inference-Header-Content-Length" not in rb.headers, (rb.status_code, rb.headers))
    rv = d.post("/v2/models/rgb/versions/1/infer", body=T.infer_body(x), headers=PNG)
    check("versioned path answers the same PNG", rv.status_code == 200 and rv.content == want,
          rv.status_code)


def test_negotiation(d):
    x = input_for("gray", 1)
    cases = [  # Accept, status, content type
        (None, 200, "application/json"),
        ("*/*", 200, "application/json"),
        ("application/json", 200, "application/json"),
        ("image/*", 200, "image/png"),
        ("image/png;q=0.9, application/json;q=0.8", 200, "image/png"),
        ("image/png;q=0.5, application/json", 200, "application/json"),
        ("image/png, */*;q=0.1", 200, "image/png"),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", 200,
         "application/json"),
        ("image/png;q=0, */*", 200, "application/json"),
    ]
    for accept, code, ctype in cases:
        r = d.post("/v2/models/gray/infer", body=T.infer_body(x),
                   headers={"Accept": accept} if accept else {})
        check("Accept: %s -> %d %s" % (accept, code, ctype), r.status_code == code and
              r.headers.get("Content-Type") == ctype, (r.status_code, r.headers, r.text[:200]))
    for accept in ("text/html", "image/png;q=0", "application/octet-stream"):
        r = d.post("/v2/models/gray/infer", body=T.infer_body(x), headers={"Accept": accept})
        ok, why = is_error(r, 406, "Accept: " + accept, "allows neither application/json "
                           "nor image/png")
        check("Accept: %s -> 406 JSON error naming both forms" % accept, ok, why)
    raw, hdrs = T.binary_request(x.tobytes(), x.shape, binary_output=True)
    r = d.post("/v2/models/gray/infer", data=raw,
               headers={**hdrs, "Accept": "application/octet-stream"})
    check("binary output with Accept: application/octet-stream -> 200 binary",
          r.status_code == 200 and r.headers.get("Content-Type") == "application/octet-stream",
          (r.status_code, r.text[:200]))


def test_not_pictures(d):
    cases = [
        ("up2d", rnd(1, 4, 4, 3), ["model 'up2d' cannot answer image/png",
                                   "its output (1, 8, 8, 2) has 2 channels",
                                   "a picture has 1 (gray), 3 (RGB) or 4 (RGBA)"]),
        ("up1d", rnd(1, 4, 2), ["its output (1, 8, 1) is 1-D", "a signal, not a picture"]),
        ("gen3d", rnd(1, 2, 2, 2, 8), ["is 3-D: a volume, not a picture"]),
        ("unbounded", input_for("unbounded", 1),
         ["its last activation (relu) is unbounded", "\"image\": {\"range\": [lo, hi]}"]),
    ]
    for name, x, words in cases:
        r = d.post("/v2/models/%s/infer" % name, body=T.infer_body(x), headers=PNG)
        ok, why = is_error(r, 406, *words)
        check("%s asked as PNG: 406 saying why" % name, ok, why)
        r = d.post("/v1/models/%s:predict" % name,
                   data=json.dumps({"instances": x.tolist()}), headers=PNG)
        ok, why = is_error(r, 406, "cannot answer image/png")
        check("%s asked as PNG over TF Serving: 406" % name, ok, why)
        r = d.post("/v2/models/%s/infer" % name, body=T.infer_body(x),
                   headers={"Accept": "image/png, application/json;q=0.5"})
        check("%s with JSON acceptable too: falls back to 200 JSON" % name,
              r.status_code == 200 and r.headers.get("Content-Type") == "application/json",
              (r.status_code, r.text[:200]))
    m = [ln for ln in d.get("/metrics").text.splitlines()
         if ln.startswith('deconvd_requests_total{model="up2d",endpoint="infer",code="406"}')]
    check("406 answers are counted in deconvd_requests_total", m and float(m[0].split()[1]) >= 1,
          m)


def test_shared_memory_output(d):
    x = input_for("gray", 1)
    n = 1 * 10 * 12 * 1 * 4
    shm = shared_memory.SharedMemory(create=True, size=4096)
    try:
        r = d.post("/v2/systemsharedmemory/region/out/register",
                   {"key": "/" + shm.name, "offset": 0, "byte_size": 4096})
        check("register a region", r.status_code == 200, r.text)
        body = T.infer_body(x)
        body["outputs"] = [{"name": "output", "parameters": {
            "shared_memory_region": "out", "shared_memory_byte_size": n}}]
        r = d.post("/v2/models/gray/infer", body=body, headers=PNG)
        ok, why = is_error(r, 406, "its output goes to shared memory region 'out'")
        check("output to shared memory asked as PNG: 406", ok, why)
        r = d.post("/v2/models/gray/infer", body=body, headers={"Accept": "image/png, */*"})
        check("... and with JSON acceptable: 200 JSON, output in the region",
              r.status_code == 200 and "shared_memory_region" in r.text, r.text[:300])
        d.post("/v2/systemsharedmemory/region/out/unregister")
    finally:
        shm.close()
        shm.unlink()


def zlib_png_bound(w, h, c):
    """zlib's deflateBound for window 15 / memLevel 8 (zlib.h, deflate.c) of
    the filtered rows, plus the signature, IHDR, IEND and 12 bytes per IDAT
    chunk of 8192 bytes (libspng's)."""
    raw = h * (1 + w * c)
    z = raw + (raw >> 12) + (raw >> 14) + (raw >> 25) + 13
    return 8 + 25 + 12 + z + 12 * (z // 8192 + 1)


def test_size_bound():
    """max_response_bytes at the bound of a 32 x 32 RGB picture: that one is
    served (JSON of it is not), one 2 px wider is refused before computing."""
    bound = zlib_png_bound(32, 32, 3)
    docs, npy = all_models()
    with T.Daemon(config={"max_response_bytes": bound, "workers": 1}, models=docs, npy=npy,
                  name="png bound daemon") as d:
        d.start()
        x = input_for("rgb", 1, 16, 16)
        r = d.post("/v2/models/rgb/infer", body=T.infer_body(x), headers=PNG)
        check("PNG of 32x32x3 at max_response_bytes = its bound (%d): 200, %d bytes" % (
            bound, len(r.content)), r.status_code == 200 and len(r.content) <= bound,
              (r.status_code, r.text[:300]))
        r = d.post("/v2/models/rgb/infer", body=T.infer_body(x))
        ok, why = is_error(r, 413, "as JSON, above max_response_bytes (%d)" % bound)
        check("the same answer as JSON: 413", ok, why)
        x = input_for("rgb", 1, 16, 17)
        r = d.post("/v2/models/rgb/infer", body=T.infer_body(x), headers=PNG)
        ok, why = is_error(r, 413, "could take %d bytes as PNG, above max_response_bytes (%d)"
                           % (zlib_png_bound(34, 32, 3), bound))
        check("PNG of 32x34x3 (bound %d): 413 naming both numbers" % zlib_png_bound(34, 32, 3),
              ok, why)
        check("bound daemon alive", d.alive(), d.log()[-1500:])


def test_budget():
    """The PNG's bound and the encoder's scratch count against
    memory_budget_bytes like any answer: a 600 x 600 gray picture from a
    stride-4 model, whose binary answer fits a 2 MiB budget (1.44 MB of
    floats written straight into the answer), needs 2.14 MB as PNG (the
    floats to encode from, the PNG's bound 361 KB, zlib's state and rows
    ~340 KB): above the whole budget, 413 (without the encoder's share it
    would have been a 503 next to the body's 720 KB)."""
    doc, npy = model("gray4", 1, 2, "sigmoid", k=4, s=4)
    with T.Daemon(config={"memory_budget_bytes": 2 << 20, "max_body_bytes": 1 << 20,
                          "max_response_bytes": 2 << 20, "workers": 1},
                  models={"gray4": doc}, npy=npy, name="png budget daemon") as d:
        d.start()
        raw, hdrs = T.binary_request(rnd(1, 6, 6, 2).tobytes(), (1, 6, 6, 2))
        r = d.post("/v2/models/gray4/infer", data=raw, headers={**hdrs, **PNG})
        check("a 24x24 picture under a 2 MiB budget: 200 image/png", r.status_code == 200 and
              r.headers.get("Content-Type") == "image/png", r.text[:200])
        raw, hdrs = T.binary_request(rnd(1, 150, 150, 2).tobytes(), (1, 150, 150, 2),
                                     binary_output=True)
        r = d.post("/v2/models/gray4/infer", data=raw, headers=hdrs)
        check("600x600 as binary output under a 2 MiB budget: 200", r.status_code == 200,
              r.text[:300])
        r = d.post("/v2/models/gray4/infer", data=raw, headers={**hdrs, **PNG})
        ok, why = is_error(r, 413, "the answer needs", "above memory_budget_bytes (2097152)")
        check("600x600 as PNG under the same budget: 413 naming memory_budget_bytes", ok, why)
        check("budget daemon alive", d.alive(), d.log()[-1500:])


NODE_FETCH = r"""
const [url, body] = process.argv.slice(2);
const r = await fetch(url, {method: "POST", body, headers: {"Accept": "image/png"}});
const b = Buffer.from(await r.arrayBuffer());
console.log(JSON.stringify({status: r.status, type: r.headers.get("content-type"),
  signature: b.subarray(1, 4).toString(), width: b.readUInt32BE(16),
  height: b.readUInt32BE(20), png: b.toString("base64")}));
"""


def test_clients(d):
    """curl and Node's fetch receive the bytes requests does."""
    x = input_for("rgb", 3)
    body = json.dumps(T.infer_body(x))
    url = d.url("/v2/models/rgb/infer")
    want = d.post("/v2/models/rgb/infer", data=body, headers=PNG).content
    tmp = tempfile.mkdtemp(prefix="dcvpng-")
    try:
        out = os.path.join(tmp, "out.png")
        p = subprocess.run(["curl", "-sS", "-H", "Accept: image/png", "-X", "POST", url,
                            "--data-binary", body, "-o", out, "-w", "%{http_code} "
                            "%{content_type}"], capture_output=True, text=True, timeout=60)
        got = open(out, "rb").read() if os.path.exists(out) else b""
        check("curl -H 'Accept: image/png' -o out.png: 200 image/png, same bytes",
              p.stdout == "200 image/png" and got == want, (p.stdout, p.stderr, len(got)))
        if not shutil.which("node"):
            check("node is installed (nodejs)", False)
            return
        script = os.path.join(tmp, "fetch.mjs")
        with open(script, "w") as f:
            f.write(NODE_FETCH)
        p = subprocess.run(["node", script, url, body], capture_output=True, text=True,
                           timeout=60)
        try:
            res = json.loads(p.stdout)
        except ValueError:
            res = {}
        px, info = png_ref.decode_png(want)
        check("Node fetch: 200 image/png, 'PNG' signature, IHDR %dx%d, same bytes" % (
            info["width"], info["height"]),
              res.get("status") == 200 and res.get("type") == "image/png" and
              res.get("signature") == "PNG" and res.get("width") == info["width"] and
              res.get("height") == info["height"] and
              base64.b64decode(res.get("png", "")) == want,
              (p.stdout[:300], p.stderr[-500:], hashlib.sha256(want).hexdigest()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    docs, npy = all_models()
    with T.Daemon(config={"workers": 2, "shared_memory": True}, models=docs, npy=npy,
                  shipped=True, name="png daemon") as d:
        d.start()
        for fn in (test_pictures, test_forms, test_negotiation, test_not_pictures,
                   test_shared_memory_output, test_clients):
            T.R.run(fn, d)
        check("png daemon alive after the PNG tests", d.alive(), d.log()[-2000:])
    T.R.run(test_size_bound)
    T.R.run(test_budget)


if __name__ == "__main__":
    T.main_guard(main)
