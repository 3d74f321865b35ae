#!/usr/bin/python3
"""Checks the bench's peers against NumPy (`make bench-peer-check`).

The peers are only a measuring stick if they compute the right thing, so
each one (ONNX Runtime on Node.js with the graphs of peer/make_onnx.py, and
PyTorch under gunicorn, both started as peers.py starts them) answers every
bench workload, binary and JSON, for a random input, and the answers are
compared with a float64 NumPy evaluation of the same Keras model file:
transposed convolutions by scattering each input position's kernel product
into the full output and cropping Keras's 'same' window; Dense, inference
BatchNormalization, LeakyReLU, Reshape and the activations by their
definitions. Bound: max |diff| <= 1e-4 * max(1, max |y|). A JSON answer must
equal the binary one exactly. A peer that cannot start (its packages
missing) is reported as skipped, not failed.
"""
import json
import os
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers  # noqa: E402
import run as rb  # noqa: E402

ACT = {"linear": lambda v: v, "relu": lambda v: np.maximum(v, 0), "tanh": np.tanh,
       "sigmoid": lambda v: 1 / (1 + np.exp(-v))}


def act(spec):
    return ACT[spec if isinstance(spec, str) else spec["config"]["name"]]


def conv_t(x, c, w):
    """Keras ConvNDTranspose, 'same', channels-last, float64."""
    k, s = list(c["kernel_size"]), list(c["strides"])
    nd = len(k)
    kern = w["kernel"].astype(np.float64)                  # (k..., out, in)
    sp = x.shape[1:-1]
    full = [(sp[i] - 1) * s[i] + k[i] for i in range(nd)]
    y = np.zeros((x.shape[0],) + tuple(full) + (c["filters"],))
    for n in range(x.shape[0]):
        for idx in np.ndindex(*sp):
            contrib = np.tensordot(kern, x[(n,) + idx], axes=([nd + 1], [0]))
            y[(n,) + tuple(slice(idx[i] * s[i], idx[i] * s[i] + k[i]) for i in range(nd))] += contrib
    crop = tuple(slice(max(k[i] - s[i], 0) // 2, max(k[i] - s[i], 0) // 2 + sp[i] * s[i]) for i in range(nd))
    y = y[(slice(None),) + crop]
    if c["use_bias"]:
        y = y + w["bias"]
    return act(c["activation"])(y)


def reference(path, x):
    with open(path) as f:
        doc = json.load(f)
    base = os.path.dirname(path)

    def load(files):
        return {k: np.load(os.path.join(base, v)).astype(np.float64) for k, v in files.items()}
    if doc["class_name"] != "Sequential":
        return conv_t(x, doc["config"], load(doc["weights"]))
    for l in doc["config"]["layers"][1:]:
        cls, c = l["class_name"], l["config"]
        w = load(doc.get("weights", {}).get(c["name"], {}))
        if cls.endswith("Transpose"):
            x = conv_t(x, c, w)
        elif cls == "Dense":
            x = x @ w["kernel"] + (w["bias"] if c["use_bias"] else 0)
            x = act(c["activation"])(x)
        elif cls == "BatchNormalization":
            n = x.shape[-1]
            g, b = w.get("gamma", np.ones(n)), w.get("beta", np.zeros(n))
            m, v = w.get("moving_mean", np.zeros(n)), w.get("moving_variance", np.ones(n))
            x = (x - m) / np.sqrt(v + c["epsilon"]) * g + b
        elif cls == "LeakyReLU":
            a = c.get("negative_slope", c.get("alpha", 0.3))
            x = np.where(x >= 0, x, a * x)
        elif cls == "Reshape":
            x = x.reshape((x.shape[0],) + tuple(c["target_shape"]))
        elif cls == "Activation":
            x = act(c["activation"])(x)
        else:
            raise SystemExit(f"check_peers: no reference for {cls}")
    return x


def ask(srv, name, b, path):
    body = open(b["bin" if path == "binary" else "json"], "rb").read()
    hdr = dict(h.split(": ", 1) for h in b["headers"][path])
    st, h, out = rb.http_req(srv.port, "POST", f"/v2/models/{name}/infer", body, hdr)
    if st != 200:
        raise RuntimeError(f"{st} {out[:200]}")
    if path == "binary":
        return rb.binary_output(h, out)
    o = json.loads(out)["outputs"][0]
    return np.array(o["data"], np.float32).reshape(o["shape"])


def main():
    work = tempfile.mkdtemp(prefix="deconvd-check-peers-")
    passed = failed = 0
    servers = []
    try:
        mdir = peers.make_models(work, peers.WORKLOADS)
        onnx_dir = os.path.join(work, "onnx")
        rc = os.system(f"/usr/bin/python3 {os.path.join(peers.PEER, 'make_onnx.py')} {onnx_dir} "
                       + " ".join(os.path.join(mdir, n + ".json") for n in peers.WORKLOADS))
        if rc == 0:
            try:
                servers.append(peers.Ort(rb, work, {n: os.path.join(onnx_dir, n + ".onnx") for n in peers.WORKLOADS},
                                         1, 1))
            except Exception as e:
                print(f"skipped: ONNX Runtime peer: {e}")
        else:
            print("skipped: ONNX Runtime peer: make_onnx.py failed (python3-onnx?)")
        try:
            servers.append(peers.Torch(rb, work, [os.path.join(mdir, n + ".json") for n in peers.WORKLOADS], 1, 1))
        except Exception as e:
            print(f"skipped: PyTorch peer: {e}")
        for name in peers.WORKLOADS:
            shape = peers.in_shape(mdir, name)
            with open(os.path.join(mdir, name + ".json")) as f:
                doc = json.load(f)
            in_name = doc["config"]["layers"][0]["config"]["name"] if doc["class_name"] == "Sequential" else "input"
            b = peers.make_bodies(rb, work, name, shape, in_name)
            ref = reference(os.path.join(mdir, name + ".json"), b["x"].astype(np.float64))
            bound = 1e-4 * max(1.0, float(np.max(np.abs(ref))))
            for srv in servers:
                try:
                    yb = ask(srv, name, b, "binary")
                    yj = ask(srv, name, b, "json")
                    diff = float(np.max(np.abs(yb - ref))) if yb.shape == ref.shape else float("inf")
                    ok = diff <= bound and np.array_equal(yb, yj)
                    why = f"max|diff| {diff:.2e} (bound {bound:.2e}), JSON {'=' if np.array_equal(yb, yj) else '!='} binary"
                except Exception as e:
                    ok, why = False, str(e)[:200]
                print(f"{'PASS' if ok else 'FAIL'} {srv.label} {name}: {why}")
                passed, failed = passed + ok, failed + (not ok)
    finally:
        for srv in servers:
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not servers else 0


if __name__ == "__main__":
    sys.exit(main())
