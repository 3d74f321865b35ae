#!/usr/bin/python3
"""test_kerasfiles.py — Keras's own files served as models.

Every fixture written by Keras 3.15.1 (tests/data/keras/iso: five transposed
convolution layers and the Keras VAE example's decoder) is dropped into the
models directory as <case>_k.keras and <case>_h.h5; each must answer
Keras's own output.npy for input.npy within 1e-5 relative. Also: a pointer
file selecting "decoder" inside a VAE-like Functional .keras built here
(Python zipfile + h5py, Keras 3's layout: nested model weights under
layers/sequential/...), a JSON model naming a .weights.h5 file, SIGHUP with
a replaced .keras (the new one serves) and with a broken one (the previous
version keeps serving), repository unload/load, /config's keras_version and
file kind, /shape, `deconvd --check`.
Skips (and says so) when the binary has no Keras file reader yet.
"""
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check  # noqa: E402

FX = os.path.join(T.ROOT, "tests", "data", "keras", "iso")
LAYERS = sorted(os.listdir(os.path.join(FX, "layers")))
CASES = [("layers", c) for c in LAYERS] + [("models", "vae_decoder")]


def fx(kind, case, f):
    return os.path.join(FX, kind, case, f)


def input_name(d, model):
    r = d.get("/v2/models/%s" % model)
    return r.json()["inputs"][0]["name"] if r.status_code == 200 else "input"


def infer(d, model, x):
    return d.post("/v2/models/%s/infer" % model,
                  {"inputs": [{"name": input_name(d, model), "shape": list(x.shape),
                               "datatype": "FP32", "data": x.ravel().tolist()}]})


def matches(d, model, kind, case, label):
    x = np.load(fx(kind, case, "input.npy"))
    want = np.load(fx(kind, case, "output.npy")).astype(np.float64)
    r = infer(d, model, x)
    ok = r.status_code == 200
    err = None
    if ok:
        got = T.output_array(r.json())
        ok = got.shape == want.shape
        if ok:
            err = float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)))
            ok = err <= 1e-5
    check("%s: %s equals Keras's output.npy within 1e-5" % (label, model), ok,
          (r.status_code, r.text[:300], err))


def index(d):
    r = d.post("/v2/repository/index")
    return {e["name"]: e for e in r.json()} if r.status_code == 200 else {}


def hup_with(d, path, content, done):
    """Puts content (a file to copy, or bytes) at path atomically, sends
    SIGHUP and waits until done(index entry of "gen") holds."""
    if isinstance(content, bytes):
        with open(path + ".tmp", "wb") as f:
            f.write(content)
    else:
        shutil.copy(content, path + ".tmp")
    os.replace(path + ".tmp", path)
    d.signal(signal.SIGHUP)
    return T.wait_until(lambda: done(index(d).get("gen", {})), 30)


def vae_keras(path):
    """A Functional "vae" (z -> decoder) around the fixture decoder, saved
    the way Keras 3 saves it: config.json, metadata.json, model.weights.h5
    with the decoder's groups under layers/sequential/ (Keras names a layer
    list's entries by snake_case class and order)."""
    src = fx("models", "vae_decoder", "model.keras")
    with zipfile.ZipFile(src) as z:
        dec = json.loads(z.read("config.json"))
        meta = z.read("metadata.json")
        wbytes = z.read("model.weights.h5")
    dec_layer = dict(dec, name="decoder", inbound_nodes=[{"args": [{
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, 2], "dtype": "float32", "keras_history": ["z", 0, 0]}}],
        "kwargs": {}}])
    dec_layer.pop("compile_config", None)
    vae = {"module": "keras.src.models.functional", "class_name": "Functional",
           "config": {"name": "vae", "trainable": True, "layers": [
               {"module": "keras.layers", "class_name": "InputLayer",
                "config": {"batch_shape": [None, 2], "dtype": "float32", "sparse": False,
                           "name": "z"}, "registered_name": None, "name": "z",
                "inbound_nodes": []},
               dec_layer],
               "input_layers": [["z", 0, 0]], "output_layers": [["decoder", 0, 0]]},
           "registered_name": "Functional", "build_config": {"input_shape": None}}
    out = io.BytesIO()
    with h5py.File(io.BytesIO(wbytes), "r") as s, h5py.File(out, "w") as t:
        t.create_group("layers/sequential")
        s.copy(s["layers"], t["layers/sequential"], name="layers")
        t.create_group("layers/sequential/vars").attrs["name"] = "decoder"
        t.create_group("vars").attrs["name"] = "vae"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", meta)
        z.writestr("config.json", json.dumps(vae))
        z.writestr("model.weights.h5", out.getvalue())
    return wbytes


def has_reader(tmp):
    """Whether this binary reads .keras files at all (k13read's readers)."""
    d = os.path.join(tmp, "probe")
    os.makedirs(os.path.join(d, "models"))
    shutil.copy(fx("layers", LAYERS[0], "model.keras"), os.path.join(d, "models", "p.keras"))
    with open(os.path.join(d, "c.json"), "w") as f:
        json.dump({"models_dir": "models"}, f)
    p = subprocess.run(T.wrapped("probe")[0] + ["--check", "--config", os.path.join(d, "c.json")],
                       capture_output=True, text=True, timeout=T.t(60))
    return "no Keras file reader" not in p.stdout + p.stderr, p


def main():
    tmp = T.tempfile.mkdtemp(prefix="dcvkeras-")
    ok, probe = has_reader(tmp)
    if not ok:
        T.R.skip("Keras files", "this build has no Keras file reader yet: %s"
                 % probe.stdout.strip()[:200])
        shutil.rmtree(tmp, ignore_errors=True)
        return T.R.finish()
    with T.Daemon(name="kerasfiles") as d:
        md = d.models_dir
        for kind, case in CASES:
            shutil.copy(fx(kind, case, "model.keras"), os.path.join(md, case + "_k.keras"))
            shutil.copy(fx(kind, case, "model.h5"), os.path.join(md, case + "_h.h5"))
        os.mkdir(os.path.join(md, "src"))
        wbytes = vae_keras(os.path.join(md, "src", "vae.keras"))
        d.write_model("dec_ptr", {"file": "src/vae.keras", "submodel": "decoder"})
        with open(os.path.join(md, "dec.weights.h5"), "wb") as f:
            f.write(wbytes)
        with open(fx("models", "vae_decoder", "model.json")) as f:
            doc = json.load(f)
        doc["weights"] = "dec.weights.h5"
        d.write_model("dec_json", doc)
        d.start()
        for kind, case in CASES:
            matches(d, case + "_k", kind, case, ".keras")
            matches(d, case + "_h", kind, case, ".h5")
        matches(d, "dec_ptr", "models", "vae_decoder", "pointer file (submodel decoder)")
        matches(d, "dec_json", "models", "vae_decoder", "JSON model + .weights.h5")

        # metadata.json of a .keras gives keras_version only; an .h5 has backend too
        for model, want in (("vae_decoder_k", {"keras_version": "3.15.1", "file_kind": "keras"}),
                            ("vae_decoder_h", {"keras_version": "3.15.1", "backend": "torch",
                                               "file_kind": "h5"}),
                            ("dec_ptr", {"file_kind": "pointer"}),
                            ("dec_json", {"file_kind": "json+h5"})):
            r = d.get("/v2/models/%s/config" % model)
            c = r.json() if r.status_code == 200 else {}
            check("/config of %s: %s" % (model, want),
                  all(c.get(k) == v for k, v in want.items()), r.text[:300])
        r = d.post("/v2/models/vae_decoder_h/shape", {"input_shape": [3, 2]})
        rows = r.json().get("layers") if r.status_code == 200 else []
        check("/shape: the .h5 decoder's layers", [x.get("output_shape") for x in rows][-1:] ==
              [[3, 28, 28, 1]], r.text[:400])

        # SIGHUP: a replaced .keras swaps in; a broken one keeps the last serving
        case0, case1 = LAYERS[0], LAYERS[1]
        gen = os.path.join(md, "gen.keras")
        ok = hup_with(d, gen, fx("layers", case0, "model.keras"), lambda e: e.get("state") ==
                      "READY")
        check("SIGHUP: a new gen.keras is served", ok, index(d).get("gen"))
        matches(d, "gen", "layers", case0, "SIGHUP v1")
        ok = hup_with(d, gen, fx("layers", case1, "model.keras"), lambda e: e.get("version") ==
                      "2")
        check("SIGHUP: a replaced gen.keras swaps in as version 2", ok, index(d).get("gen"))
        matches(d, "gen", "layers", case1, "SIGHUP v2")
        ok = hup_with(d, gen, b"PK\x03\x04 not a zip at all",
                      lambda e: "gen.keras" in e.get("reason", ""))
        check("SIGHUP: a broken gen.keras is a load error naming it", ok, index(d).get("gen"))
        check("SIGHUP: the previous version keeps serving",
              index(d).get("gen", {}).get("state") == "READY", index(d).get("gen"))
        matches(d, "gen", "layers", case1, "after a broken replacement")
        check("daemon alive after the broken file", d.alive(), d.tail())
        untouched = {n: e.get("version") for n, e in index(d).items() if n != "gen"}
        check("SIGHUP: untouched Keras files keep version 1 (not re-read)",
              set(untouched.values()) == {"1"}, untouched)
        os.unlink(gen)

        # repository unload / load of a .keras model
        r = d.post("/v2/repository/models/vae_decoder_k/unload")
        check("repository: unload a .keras model", r.status_code == 200 and
              index(d).get("vae_decoder_k", {}).get("state") == "UNAVAILABLE", r.text[:200])
        r = d.post("/v2/repository/models/vae_decoder_k/load")
        check("repository: load it again", r.status_code == 200 and
              index(d).get("vae_decoder_k", {}).get("state") == "READY", r.text[:200])
        matches(d, "vae_decoder_k", "models", "vae_decoder", "after repository load")

        p = subprocess.run(T.wrapped("check")[0] + ["--check", "--config", d.config_path],
                           capture_output=True, text=True, timeout=T.t(120))
        lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.strip()}
        check("--check: every Keras file loads", p.returncode == 0 and all(
            "keras 3.15.1" in lines.get(c + s, "") for _, c in CASES for s in ("_k", "_h")),
            p.stdout[-1500:] + p.stderr[-500:])
        check("--check: the pointer file", "pointer file" in lines.get("dec_ptr", ""),
              lines.get("dec_ptr"))
    shutil.rmtree(tmp, ignore_errors=True)
    return T.R.finish()


if __name__ == "__main__":
    sys.exit(main())
