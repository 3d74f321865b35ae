#!/usr/bin/python3
"""test_chain.py — a whole Keras model served like a single layer, black-box.

The Keras VAE example's decoder (tests/data/models/vae_decoder.json and its
.npy weights, written from Keras 3.15's own files; Dense -> Reshape -> three
Conv2DTranspose, sigmoid last) against Keras's own output
(tests/data/vae_decoder/output.npy, from predict()) within 1e-5 relative,
through every way in: KServe JSON (the Keras input name and the generic
"input"), binary tensors, TF Serving (rows and columns), system shared
memory, PNG answers; and everything around it: metadata names and dims,
/shape's per-layer table, /config, stats, metrics, SIGHUP reload of a
changed weight file, repository unload/load and `deconvd --check`'s
summary table. A single-layer model next to it checks that its names,
table and --check lines stay as they were. Expected parameter counts are
Keras's rule applied to the weight files' shapes. Prints one line per
check and "N passed, N failed".
"""
import json
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check  # noqa: E402

import png_ref  # noqa: E402  (tests/, on the path through dcvtest)

DATA = os.path.join(T.ROOT, "tests", "data")
VAE_JSON = os.path.join(DATA, "models", "vae_decoder.json")
VAE_NPY = os.path.join(DATA, "models", "vae_decoder")
X = np.load(os.path.join(DATA, "vae_decoder", "input.npy")).astype(np.float32)
Y = np.load(os.path.join(DATA, "vae_decoder", "output.npy")).astype(np.float64)
IN_NAME, OUT_NAME = "input_layer", "conv2d_transpose_2"
TOL = 1e-5


def close_to_keras(got, want=Y):
    """(ok, detail): relative error against Keras's output (absolute near 0)."""
    got = np.asarray(got, np.float64)
    if got.shape != want.shape:
        return False, "shape %s, Keras %s" % (got.shape, want.shape)
    err = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-3)))
    return err <= TOL, "max relative error %.3g" % err


def keras_params():
    """Keras's count per layer (every weight's size), from the .npy files."""
    p = {}
    for f in sorted(os.listdir(VAE_NPY)):
        layer = f.split(".")[0]
        p[layer] = p.get(layer, 0) + int(np.load(os.path.join(VAE_NPY, f)).size)
    return p


# (name, class, output shape for an unknown batch) as Keras's summary has them
TABLE = [(IN_NAME, "InputLayer", [-1, 2]), ("dense", "Dense", [-1, 3136]),
         ("reshape", "Reshape", [-1, 7, 7, 64]),
         ("conv2d_transpose", "Conv2DTranspose", [-1, 14, 14, 64]),
         ("conv2d_transpose_1", "Conv2DTranspose", [-1, 28, 28, 32]),
         (OUT_NAME, "Conv2DTranspose", [-1, 28, 28, 1])]


def install_vae(models_dir, name="vae"):
    shutil.copy(VAE_JSON, os.path.join(models_dir, name + ".json"))
    dst = os.path.join(models_dir, "vae_decoder")
    if not os.path.isdir(dst):
        shutil.copytree(VAE_NPY, dst)


def kserve(x, name=IN_NAME, outputs=None, binary_output=False):
    body = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}
    if outputs is not None:
        body["outputs"] = [{"name": o} for o in outputs]
    if binary_output:
        body["parameters"] = {"binary_data_output": True}
    return body


def error_of(r):
    try:
        return r.json().get("error", "")
    except ValueError:
        return ""


# ------------------------------------------------------------------ checks

def test_metadata(d):
    j = d.get("/v2/models/vae").json()
    check("chain metadata: platform keras_chain", j.get("platform") == "keras_chain", j)
    check("chain metadata: the Keras input name and its rank-2 signature",
          j.get("inputs") == [{"name": IN_NAME, "datatype": "FP32", "shape": [-1, 2]}], j)
    check("chain metadata: the last layer's name and a rank-4 output",
          j.get("outputs") == [{"name": OUT_NAME, "datatype": "FP32",
                                "shape": [-1, 28, 28, 1]}], j)
    j = d.get("/v2/models/up2d").json()
    check("single-layer metadata keeps input/output",
          [t["name"] for t in j["inputs"] + j["outputs"]] == ["input", "output"], j)
    r = d.get("/v1/models/vae/metadata")
    try:
        sd = r.json()["metadata"]["signature_def"]["signature_def"]["serving_default"]
        dims_in = [int(v["size"]) for v in sd["inputs"][IN_NAME]["tensor_shape"]["dim"]]
        dims_out = [int(v["size"]) for v in sd["outputs"][OUT_NAME]["tensor_shape"]["dim"]]
        ok = dims_in == [-1, 2] and dims_out == [-1, 28, 28, 1]
    except (KeyError, TypeError, ValueError):
        ok = False
    check("TFS metadata: signature_def keyed by the Keras names with their dims", ok, r.text)


def test_kserve(d):
    r = d.post("/v2/models/vae/infer", kserve(X))
    j = r.json() if r.status_code == 200 else {}
    ok, why = close_to_keras(T.output_array(j)) if j else (False, r.text)
    check("KServe JSON (input named %s) equals Keras's output.npy" % IN_NAME, ok, why)
    check("the answer names the Keras output",
          j.get("outputs", [{}])[0].get("name") == OUT_NAME, r.text[:300])
    r = d.post("/v2/models/vae/infer", kserve(X, name="input", outputs=["output"]))
    ok, why = (close_to_keras(T.output_array(r.json())) if r.status_code == 200
               else (False, r.text))
    check("KServe with the generic names input/output equals Keras", ok, why)
    r = d.post("/v2/models/vae/infer", kserve(X, outputs=[OUT_NAME]))
    check("outputs may name the Keras output", r.status_code == 200, r.text[:300])
    r = d.post("/v2/models/vae/infer", kserve(X, name="z"))
    err = error_of(r)
    check("an input named otherwise: 400 naming it and both accepted names",
          r.status_code == 400 and "'z'" in err and IN_NAME in err and "'input'" in err, r.text)
    r = d.post("/v2/models/vae/infer", kserve(X, outputs=["image"]))
    err = error_of(r)
    check("an output named otherwise: 400 naming it and the Keras output",
          r.status_code == 400 and "'image'" in err and OUT_NAME in err, r.text)
    r = d.post("/v2/models/vae/infer", kserve(np.zeros((1, 3), np.float32)))
    check("a latent of 3 values: 400", r.status_code == 400 and error_of(r), r.text)


def test_binary(d):
    body, hdr = T.binary_request(X.astype("<f4").tobytes(), X.shape, binary_output=True)
    r = d.post("/v2/models/vae/infer", data=body, headers=hdr)
    head, raw = T.parse_binary_response(r) if r.status_code == 200 else ({}, None)
    out = (head.get("outputs") or [{}])[0]
    ok, why = (close_to_keras(raw.reshape(out["shape"])) if raw is not None
               else (False, r.text[:300]))
    check("KServe binary in and out equals Keras", ok, why)
    check("binary answer: the Keras output name and [3,28,28,1]",
          out.get("name") == OUT_NAME and out.get("shape") == [3, 28, 28, 1], head)


def test_tfserving(d):
    r = d.post("/v1/models/vae:predict", {"instances": X.tolist()})
    ok, why = (close_to_keras(r.json()["predictions"]) if r.status_code == 200
               else (False, r.text))
    check("TF Serving rows equal Keras", ok, why)
    r = d.post("/v1/models/vae:predict", {"inputs": {IN_NAME: X.tolist()}})
    ok, why = (close_to_keras(r.json()["outputs"]) if r.status_code == 200
               else (False, r.text))
    check("TF Serving columns keyed by the Keras input name equal Keras", ok, why)
    r = d.post("/v1/models/vae:predict", {"instances": [{IN_NAME: v} for v in X.tolist()]})
    ok, why = (close_to_keras(r.json()["predictions"]) if r.status_code == 200
               else (False, r.text))
    check("TF Serving named instances equal Keras", ok, why)


def test_shm(d):
    name = "dcvtest-chain-%d" % os.getpid()
    path = "/dev/shm/" + name
    out_bytes = Y.size * 4
    size = 4096 + out_bytes
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
        mm[:X.nbytes] = X.astype("<f4").tobytes()
        r = d.post("/v2/systemsharedmemory/region/io/register",
                   {"key": "/" + name, "offset": 0, "byte_size": size})
        check("shm: register", r.status_code == 200, r.text)
        body = {"inputs": [{"name": IN_NAME, "shape": list(X.shape), "datatype": "FP32",
                            "parameters": {"shared_memory_region": "io",
                                           "shared_memory_byte_size": X.nbytes}}],
                "outputs": [{"name": OUT_NAME, "parameters": {
                    "shared_memory_region": "io", "shared_memory_byte_size": out_bytes,
                    "shared_memory_offset": 4096}}]}
        r = d.post("/v2/models/vae/infer", body)
        out = r.json().get("outputs", [{}])[0] if r.status_code == 200 else {}
        got = np.frombuffer(mm, "<f4", Y.size, 4096).reshape(Y.shape)
        ok, why = close_to_keras(got) if out else (False, r.text)
        check("shared memory in and out equals Keras", ok, why)
        check("shm answer: the Keras output name and its shape, no data",
              out.get("name") == OUT_NAME and out.get("shape") == [3, 28, 28, 1]
              and "data" not in out, r.text)
        body["outputs"][0]["parameters"]["shared_memory_byte_size"] = out_bytes - 4
        r = d.post("/v2/models/vae/infer", body)
        err = error_of(r)
        check("shm output too small: 400 naming the output and its rank-4 shape",
              r.status_code == 400 and OUT_NAME in err and "[3,28,28,1]" in err, r.text)
        d.post("/v2/systemsharedmemory/region/io/unregister")
        del got
        mm.close()
    finally:
        os.close(fd)
        os.unlink(path)


def test_png(d):
    r = d.post("/v2/models/vae/infer", kserve(X))
    floats = T.output_array(r.json()) if r.status_code == 200 else None
    r = d.post("/v2/models/vae/infer", kserve(X), headers={"Accept": "image/png"})
    check("PNG answer: 200 image/png",
          r.status_code == 200 and r.headers.get("content-type") == "image/png",
          (r.status_code, r.headers.get("content-type"), r.text[:200]))
    if r.status_code != 200 or floats is None:
        return
    why = png_ref.check_file(r.content, png_ref.expected_pixels(floats, 0.0, 1.0))
    check("PNG: a 2x2 grid of the 3 pictures, sigmoid's [0, 1] onto 0..255", why is None, why)
    got, _ = png_ref.decode_png(r.content)
    want = png_ref.expected_pixels(Y, 0.0, 1.0)
    diff = int(np.max(np.abs(got.astype(int) - want.astype(int)))) if got.shape == want.shape \
        else None
    check("PNG pixels within one level of Keras's output mapped the same way",
          diff is not None and diff <= 1, diff)
    r = d.post("/v1/models/vae:predict", {"instances": X.tolist()},
               headers={"Accept": "image/png"})
    check("TF Serving PNG: the same picture",
          r.status_code == 200 and png_ref.check_file(
              r.content, png_ref.expected_pixels(floats, 0.0, 1.0)) is None, r.status_code)


def test_shape(d):
    r = d.post("/v2/models/vae/shape", {"input_shape": [None, 2]})
    j = r.json() if r.status_code == 200 else {}
    params = keras_params()
    want = [{"name": n, "class_name": c, "output_shape": s, "params": params.get(n, 0)}
            for n, c, s in TABLE]
    check("chain /shape: input and output shapes",
          j.get("input_shape") == [-1, 2] and j.get("output_shape") == [-1, 28, 28, 1], r.text)
    check("chain /shape: model.summary()'s table, row by row", j.get("layers") == want,
          (j.get("layers"), want))
    check("chain /shape: total_params = %d" % sum(params.values()),
          j.get("total_params") == sum(params.values()), j.get("total_params"))
    r = d.post("/v2/models/vae/shape", {"input_shape": [5, 2]})
    rows = r.json().get("layers", []) if r.status_code == 200 else []
    check("chain /shape on batch 5: every row's batch is 5",
          len(rows) == len(TABLE) and all(row["output_shape"][0] == 5 for row in rows), r.text)
    r = d.post("/v2/models/vae/shape", {"input_shape": [None, 3]})
    err = error_of(r)
    check("chain /shape on a latent of 3: 400 saying the input refuses it (dim 1, 2 and 3)",
          r.status_code == 400 and "input" in err and "2" in err and "3" in err, r.text)
    # the same table from the config alone, nothing loaded (/v2/shape)
    doc = json.load(open(VAE_JSON))
    doc.pop("weights", None)
    r = d.post("/v2/shape", dict(doc, input_shape=[None, 2]))
    j = r.json() if r.status_code == 200 else {}
    check("/v2/shape of the VAE decoder's config: model.summary()'s table and total",
          j.get("layers") == want and j.get("total_params") == sum(params.values()) and
          j.get("output_shape") == [-1, 28, 28, 1], (r.status_code, r.text[:600]))
    r = d.post("/v2/shape", dict(doc, input_shape=[4, 3]))
    check("/v2/shape of the VAE config on a latent of 3: 400 naming the input layer",
          r.status_code == 400 and IN_NAME in error_of(r), r.text)
    bad = json.loads(json.dumps(doc))
    bad["config"]["layers"][2]["class_name"] = "LSTM"
    r = d.post("/v2/shape", dict(bad, input_shape=[None, 2]))
    check("/v2/shape of a config with an LSTM: 400 naming the layer and its class",
          r.status_code == 400 and "(class LSTM) is not supported" in error_of(r), r.text)


def test_config_stats_metrics(d):
    r = d.get("/v2/models/vae/config")
    text = r.text
    check("chain /config: 200 naming every layer",
          r.status_code == 200 and all('"%s"' % n in text for n, _, _ in TABLE[1:]), text[:600])
    r = d.get("/v2/models/vae/stats")
    try:
        st = r.json()["model_stats"][0]
        ok = st["name"] == "vae" and int(st["inference_count"]) > 0
    except (KeyError, IndexError, TypeError, ValueError):
        ok = False
    check("chain stats: inferences counted", r.status_code == 200 and ok, r.text[:400])
    r = d.get("/v2/models/stats")
    check("all stats with a chain among them: 200", r.status_code == 200, r.text[:200])
    m = d.get("/metrics").text
    check("metrics: requests labelled model=\"vae\"",
          'deconvd_requests_total{model="vae",endpoint="infer",code="200"}' in m,
          [ln for ln in m.splitlines() if "vae" in ln][:5])


def test_reload(d):
    """A changed bias of the last layer is served after SIGHUP: Keras's output
    pushed through the logit, shifted, and back through the sigmoid."""
    p = os.path.join(d.models_dir, "vae_decoder", OUT_NAME + ".bias.npy")
    b = np.load(p)
    T.write_npy(p, (b + 0.5).astype(np.float32))
    d.signal(signal.SIGHUP)
    ok = T.wait_until(lambda: d.get("/v2/models/vae").json().get("versions") == ["2"], 10)
    check("SIGHUP after a weight file changed: version 2", ok,
          d.get("/v2/models/vae").text)
    r = d.post("/v2/models/vae/infer", kserve(X))
    want = 1 / (1 + np.exp(-(np.log(Y / (1 - Y)) + 0.5)))
    ok, why = (close_to_keras(T.output_array(r.json()), want) if r.status_code == 200
               else (False, r.text))
    check("the reloaded chain computes with the new bias", ok, why)
    T.write_npy(p, b)
    d.signal(signal.SIGHUP)
    T.wait_until(lambda: d.get("/v2/models/vae").json().get("versions") == ["3"], 10)


def test_repository(d):
    r = d.post("/v2/repository/models/vae/unload")
    check("repository unload of the chain: 200", r.status_code == 200, r.text)
    r = d.post("/v2/models/vae/infer", kserve(X))
    check("unloaded chain: inference 503", r.status_code == 503, r.text)
    r = d.post("/v2/repository/models/vae/load")
    check("repository load of the chain: 200", r.status_code == 200, r.text)
    r = d.post("/v2/models/vae/infer", kserve(X))
    ok, why = (close_to_keras(T.output_array(r.json())) if r.status_code == 200
               else (False, r.text))
    check("loaded again: equals Keras", ok, why)


# Multiply-adds of one latent through the decoder, Keras's layers counted as
# the engine's max_work counts a layer: Dense 2*3136, then each transposed
# convolution's input values x filters x kernel.
WORK_ONE = 2 * 3136 + 7 * 7 * 64 * 64 * 9 + 14 * 14 * 64 * 32 * 9 + 28 * 28 * 32 * 1 * 9


def test_bounds():
    """max_work and the memory budget bound the whole chain: the work of all
    its layers, and its intermediate tensors (a batch of 64 needs ~10 MB
    between Dense and the last layer, though its body and answer fit 4 MiB)."""
    cfg = {"max_work": int(WORK_ONE * 1.5), "memory_budget_bytes": 4 << 20,
           "max_body_bytes": 1 << 20, "max_response_bytes": 4 << 20}
    with T.Daemon(config=cfg, name="bounded chain daemon") as d:
        install_vae(d.models_dir)
        d.start()
        r = d.post("/v2/models/vae/infer", kserve(X[:1]))
        ok, why = (close_to_keras(T.output_array(r.json()), Y[:1]) if r.status_code == 200
                   else (False, r.text))
        check("bounded: one latent (%d multiply-adds) is computed" % WORK_ONE, ok, why)
        r = d.post("/v2/models/vae/infer", kserve(X[:2]))
        err = error_of(r)
        check("max_work bounds the chain's summed work: batch 2 is 413 naming max_work",
              r.status_code == 413 and "max_work" in err, r.text)
    big = np.repeat(X[:1], 64, axis=0)
    with T.Daemon(config=dict(cfg, max_work=WORK_ONE * 100), name="budget chain daemon") as d:
        install_vae(d.models_dir)
        d.start()
        r = d.post("/v2/models/vae/infer", kserve(big, binary_output=True))
        err = error_of(r)
        check("the budget charges the chain's intermediate tensors: batch 64 (a 200 KB "
              "answer) is 413 naming memory_budget_bytes", r.status_code == 413
              and "memory_budget_bytes" in err, r.text[:300])
        r = d.post("/v2/models/vae/infer", kserve(big[:4], binary_output=True))
        check("... and batch 4 fits", r.status_code == 200, r.text[:300])


def test_check_cli(tmp):
    mdir = os.path.join(tmp, "models")
    os.makedirs(mdir)
    install_vae(mdir)
    T.copy_shipped_models(mdir, ["up1d"])
    cfg = os.path.join(tmp, "c.json")
    with open(cfg, "w") as f:
        json.dump({"models_dir": "models"}, f)
    cmd, vglog = T.wrapped("cli --check chain")
    p = subprocess.run(cmd + ["--config", cfg, "--check"], capture_output=True,
                       timeout=T.t(60), stdin=subprocess.DEVNULL)
    T.check_valgrind("cli --check chain", vglog)
    out = p.stdout.decode()
    lines = out.splitlines()
    check("--check with a chain: exit 0", p.returncode == 0, (p.returncode, out, p.stderr[-500:]))
    head = [ln for ln in lines if ln.startswith("vae ")]
    check("--check: the chain's line (class, signature)",
          head and "Sequential" in head[0] and "[-1, 2]" in head[0]
          and "[-1, 28, 28, 1]" in head[0], head)
    params = keras_params()
    i = lines.index(head[0]) if head else 0
    body = lines[i + 1:i + 3 + len(TABLE)]
    for (n, c, s), ln in zip(TABLE, body[1:]):
        shape = "(" + ", ".join("None" if v < 0 else str(v) for v in s) + ")"
        cells = ln.split()
        check("--check table row %s (%s) %s %d" % (n, c, shape, params.get(n, 0)),
              ln.strip().startswith("%s (%s)" % (n, c)) and shape in ln
              and cells and cells[-1] == str(params.get(n, 0)), ln)
    check("--check table: header and Total params: %d" % sum(params.values()),
          body and "Layer (type)" in body[0] and "Param #" in body[0]
          and body[-1].strip() == "Total params: %d" % sum(params.values()), body)
    up1d = [ln.strip() for ln in lines if "(Conv1DTranspose)" in ln]
    check("--check table for a single layer: its row (3*2*1 + 1 = 7 params)",
          up1d == ["up1d (Conv1DTranspose)  (None, None, 1)  7"], up1d)


def main():
    with T.Daemon(config={"shared_memory": True, "workers": 2}, shipped=["up2d"],
                  name="chain daemon") as d:
        install_vae(d.models_dir)
        d.start()
        for fn in (test_metadata, test_kserve, test_binary, test_tfserving, test_shm,
                   test_png, test_shape, test_config_stats_metrics, test_reload,
                   test_repository):
            T.R.run(fn, d)
        check("daemon alive after the chain tests", d.alive(), d.log()[-2000:])
    T.R.run(test_bounds)
    tmp = tempfile.mkdtemp(prefix="dcvchain-")
    try:
        T.R.run(test_check_cli, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    T.main_guard(main)
