#!/usr/bin/python3
"""test_chain_random.py — random Keras chains served whole, against NumPy.

Draws chains of layers (fixed seed) the way decoders are built — a latent
through Dense and Reshape, or an image through convolutions, transposed
convolutions, BatchNormalization, activation layers, resampling, cropping,
padding and the inference identities — each written as Keras 3.15's
Sequential get_config() writes it (and a share as tf.keras 2 spellings),
with random weights as .npy files keyed by layer name. Every chain's shape
is tracked by running tests/numpy_layers.py (the independent reference) as
it grows; a draw the reference refuses is dropped. The daemon serves them
all from one models directory; each answer must equal the reference within
1e-4 relative (float32 compute against float64; values near 0 are held
to 1e-5 of the output's largest magnitude, the scale float32 sums cancel at). Also checks that
`/v2/models/{m}/shape` gives every layer's output shape as the reference
computes it.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dcvtest as T  # noqa: E402
from dcvtest import check  # noqa: E402

sys.path.insert(0, os.path.join(T.ROOT, "tests"))
import numpy_layers  # noqa: E402

NCHAINS = 40
RNG = np.random.default_rng(1207)


def rnd(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def pick(seq):
    return seq[int(RNG.integers(len(seq)))]


def k3(cls, name, cfg):
    """A layer as Keras 3 serializes it inside a Sequential config."""
    return {"module": "keras.layers", "class_name": cls, "config": dict(cfg, name=name,
            trainable=True, dtype={"module": "keras", "class_name": "DTypePolicy",
                                   "config": {"name": "float32"}, "registered_name": None}),
            "registered_name": None}


ACTS = ["linear", "relu", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
        "swish", "gelu", "relu6", "leaky_relu", "hard_sigmoid", "mish", "exponential"]


def conv_like(shape, transpose):
    rank = len(shape) - 2
    cin = shape[-1]
    k = [int(RNG.integers(1, 4)) for _ in range(rank)]
    s = [int(RNG.integers(1, 3)) for _ in range(rank)]
    filters = int(RNG.integers(1, 6))
    cfg = {"filters": filters, "kernel_size": k, "strides": s,
           "padding": pick(["same", "valid"]), "data_format": "channels_last",
           "dilation_rate": [1] * rank, "activation": pick(ACTS),
           "use_bias": bool(RNG.integers(0, 4) != 0)}
    cls = "Conv%dD%s" % (rank, "Transpose" if transpose else "")
    if transpose:
        cfg["output_padding"] = None
        kern = rnd(*k, filters, cin, scale=0.5)
    else:
        cfg["groups"] = 1
        kern = rnd(*k, cin, filters, scale=0.5)
    w = {"kernel": kern}
    if cfg["use_bias"]:
        w["bias"] = rnd(filters, scale=0.2)
    return cls, cfg, w


def draw_layer(shape):
    """(class, config, {weight name: array}) applicable to an input of `shape`."""
    rank = len(shape) - 2
    c = shape[-1]
    opts = ["Dense", "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU",
            "PReLU", "Dropout", "Softmax"]
    if rank >= 1:
        opts += ["ConvT", "ConvT", "Conv", "UpSampling", "ZeroPadding", "Cropping",
                 "SpatialDropout", "Flatten"]
    kind = pick(opts)
    if kind == "Dense":
        units = int(RNG.integers(1, 9))
        bias = bool(RNG.integers(0, 3) != 0)
        w = {"kernel": rnd(c, units, scale=0.5)}
        if bias:
            w["bias"] = rnd(units, scale=0.2)
        return "Dense", {"units": units, "activation": pick(ACTS), "use_bias": bias}, w
    if kind == "BatchNormalization":
        w = {"gamma": rnd(c, scale=0.5) + 1, "beta": rnd(c, scale=0.3),
             "moving_mean": rnd(c, scale=0.3),
             "moving_variance": (np.abs(rnd(c)) + 0.5).astype(np.float32)}
        return "BatchNormalization", {"axis": -1, "momentum": 0.99, "epsilon": 0.001,
                                      "center": True, "scale": True}, w
    if kind == "Activation":
        return "Activation", {"activation": pick(ACTS)}, {}
    if kind == "ReLU":
        return "ReLU", {"max_value": pick([None, 1.0, 6.0]),
                        "negative_slope": pick([0.0, 0.1]),
                        "threshold": pick([0.0, 0.25])}, {}
    if kind == "LeakyReLU":
        return "LeakyReLU", {"negative_slope": pick([0.2, 0.3, 0.01])}, {}
    if kind == "ELU":
        return "ELU", {"alpha": pick([1.0, 0.5])}, {}
    if kind == "PReLU":
        shared = [1 + i for i in range(rank)] if rank and RNG.integers(0, 2) else None
        ashape = list(shape[1:])
        for a in shared or []:
            ashape[a - 1] = 1
        return "PReLU", {"shared_axes": shared}, {"alpha": rnd(*ashape, scale=0.3)}
    if kind == "Dropout":
        return "Dropout", {"rate": 0.5, "seed": None, "noise_shape": None}, {}
    if kind == "Softmax":
        return "Softmax", {"axis": -1}, {}
    if kind == "ConvT":
        return conv_like(shape, True)
    if kind == "Conv":
        return conv_like(shape, False)
    if kind == "UpSampling":
        size = [int(RNG.integers(1, 3)) for _ in range(rank)]
        cfg = {"size": size[0] if rank == 1 else size, "data_format": "channels_last"}
        if rank == 1:
            cfg.pop("data_format")
        if rank == 2:
            cfg["interpolation"] = pick(["nearest", "bilinear"])
        return "UpSampling%dD" % rank, cfg, {}
    if kind == "ZeroPadding":
        pad = [[int(RNG.integers(0, 2)), int(RNG.integers(0, 3))] for _ in range(rank)]
        cfg = {"padding": pad[0] if rank == 1 else pad, "data_format": "channels_last"}
        if rank == 1:
            cfg.pop("data_format")
        return "ZeroPadding%dD" % rank, cfg, {}
    if kind == "Cropping":
        crop = [[int(RNG.integers(0, 2)), int(RNG.integers(0, 2))] for _ in range(rank)]
        cfg = {"cropping": crop[0] if rank == 1 else crop, "data_format": "channels_last"}
        if rank == 1:
            cfg.pop("data_format")
        return "Cropping%dD" % rank, cfg, {}
    if kind == "SpatialDropout":
        return "SpatialDropout%dD" % rank, {"rate": 0.3, "seed": None}, {}
    return "Flatten", {"data_format": "channels_last"}, {}


def reference(layers, x, keras=3):
    return numpy_layers.run([(cls, cfg, list(w.values())) for cls, cfg, w in layers], x, keras)


def k2(cls, name, cfg):
    """The same layer as tf.keras 2.x writes it (no module, plain dtype, alpha)."""
    cfg = dict(cfg, name=name, trainable=True, dtype="float32")
    if cls == "LeakyReLU":
        cfg["alpha"] = cfg.pop("negative_slope")
    return {"class_name": cls, "config": cfg}


def draw_chain(i):
    """(doc, npy files, input, expected output, per-layer shapes)."""
    if i % 3 == 0:                               # a latent decoded through Dense + Reshape
        latent = int(RNG.integers(2, 9))
        rank = int(RNG.integers(1, 3))
        sp = [int(RNG.integers(2, 5)) for _ in range(rank)]
        ch = int(RNG.integers(1, 5))
        units = int(np.prod(sp)) * ch
        layers = [("Dense", {"units": units, "activation": pick(ACTS), "use_bias": True},
                   {"kernel": rnd(latent, units, scale=0.5), "bias": rnd(units, scale=0.2)}),
                  ("Reshape", {"target_shape": sp + [ch]}, {})]
        in_shape = [2, latent]
    else:
        rank = int(RNG.integers(1, 4))
        sp = [int(RNG.integers(2, 6 if rank < 3 else 4)) for _ in range(rank)]
        in_shape = [int(RNG.integers(1, 3))] + sp + [int(RNG.integers(1, 5))]
        layers = []
    x = rnd(*in_shape)
    keras = 2 if i % 4 == 1 else 3
    y = reference(layers, x, keras) if layers else x
    want = int(RNG.integers(3, 7))
    tries = 0
    while len(layers) < want and tries < 60:
        tries += 1
        cand = draw_layer(list(y.shape))
        if max(y.shape) > 64 or y.size > 20000:
            break
        try:
            y2 = numpy_layers.run([(cand[0], cand[1], list(cand[2].values()))], y, keras)
        except (ValueError, KeyError, AssertionError, IndexError):
            continue
        if y2.size == 0 or y2.size > 40000 or not np.all(np.isfinite(y2)) or \
                np.max(np.abs(y2)) > 1e4:
            continue
        layers.append(cand)
        y = y2
    names, specs, weights, npy = [], [], {}, {}
    name_of = {}
    shapes = []
    yy = x.astype(np.float64)
    for j, (cls, cfg, w) in enumerate(layers):
        base = cls.lower()
        name_of[base] = name_of.get(base, -1) + 1
        name = "%s_%d" % (base, name_of[base]) if name_of[base] else base
        names.append(name)
        specs.append((k3 if keras == 3 else k2)(cls, name, cfg))
        if w:
            weights[name] = {}
            for wn, arr in w.items():
                f = "c%d.%s.%s.npy" % (i, name, wn)
                npy[f] = arr
                weights[name][wn] = f
        yy = numpy_layers.run([(cls, cfg, list(w.values()))], yy, keras)
        shapes.append(list(yy.shape))
    batch_shape = [None] + list(in_shape[1:])
    if keras == 2:
        doc = {"class_name": "Sequential", "keras_version": "2.15.0", "backend": "tensorflow",
               "config": {"name": "chain%d" % i,
                          "layers": [{"class_name": "InputLayer",
                                      "config": {"batch_input_shape": batch_shape,
                                                 "dtype": "float32", "sparse": False,
                                                 "ragged": False, "name": "input_layer"}}] +
                          specs},
               "weights": weights}
        return doc, npy, x, yy, list(zip(names, [s["class_name"] for s in specs], shapes))
    doc = {"module": "keras", "class_name": "Sequential", "registered_name": None,
           "config": {"name": "chain%d" % i, "trainable": True,
                      "layers": [{"module": "keras.layers", "class_name": "InputLayer",
                                  "config": {"batch_shape": batch_shape, "dtype": "float32",
                                             "sparse": False, "name": "input_layer"},
                                  "registered_name": None}] + specs},
           "weights": weights}
    return doc, npy, x, yy, list(zip(names, [s["class_name"] for s in specs], shapes))


def test_chains(d, chains):
    for i, (doc, _, x, want, table) in enumerate(chains):
        name = "chain%d" % i
        classes = " > ".join(c for _, c, _ in table)
        r = d.post("/v2/models/%s/infer" % name,
                   {"inputs": [{"name": "input_layer", "shape": list(x.shape), "datatype": "FP32",
                                "data": x.ravel().tolist()}]})
        ok = r.status_code == 200
        got = T.output_array(r.json()) if ok else None
        if ok and got.shape == want.shape:
            # float32 sums cancel: a value near 0 is exact to the scale of
            # what was summed, so the bound is relative with a floor at 1e-5
            # of the output's largest magnitude
            scale = max(float(np.max(np.abs(want))), 1e-6)
            err = float(np.max(np.abs(got - want) / (np.abs(want) + 0.1 * scale)))
            ok = err < 1e-4
        else:
            err = None
        check("chain %d (%s): %s equals NumPy" % (i, "x".join(map(str, x.shape)), classes), ok,
              (r.status_code, r.text[:400], err))
        r = d.post("/v2/models/%s/shape" % name, {"input_shape": list(x.shape)})
        rows = r.json().get("layers") if r.status_code == 200 else None
        got_rows = [(row.get("name"), row.get("output_shape")) for row in rows or []
                    if row.get("class_name") != "InputLayer"]
        check("chain %d: /shape gives every layer's output shape" % i,
              got_rows == [(n, s) for n, _, s in table], (r.status_code, r.text[:600], table))


def main():
    chains = [draw_chain(i) for i in range(NCHAINS)]
    docs, npy = {}, {}
    for i, (doc, files, *_rest) in enumerate(chains):
        docs["chain%d" % i] = doc
        npy.update(files)
    with T.Daemon(config={"workers": 2}, models=docs, npy=npy, name="chains daemon") as d:
        d.start()
        T.R.run(test_chains, d, chains)
        check("daemon alive after the random chains", d.alive(), d.log()[-2000:])


if __name__ == "__main__":
    T.main_guard(main)
