#!/usr/bin/env python3
"""numpy_layers.py — an independent NumPy reference for whole Keras chains.

Runs a list of Keras layers ({"class_name", "config"} as get_config() gives
them, after deconvd's model-form step or written by a test) on an input, in
float64, one function per layer class, sharing no code with deconvd. The
transposed convolution comes from numpy_ref.py. `keras` (2 or 3) selects the
semantics where Keras 3 and tf.keras 2 differ.

Usage:
    numpy_layers.py CASE_DIR...   each CASE_DIR holds layers.json
                                  ({"keras": 3, "layers": [{"class_name",
                                  "config", "weights": ["w0.npy", ...]}]}),
                                  x.npy; writes out.npy (float64) there
A layer's weights are listed in Keras `layer.weights` order.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_ref  # noqa: E402

LAYERS = {}


def layer(*names):
    def reg(fn):
        for n in names:
            LAYERS[n] = fn
        return fn
    return reg


# --- shape layers -----------------------------------------------------------

@layer("InputLayer")
def input_layer(cfg, w, x, keras):
    return x


@layer("Reshape")
def reshape(cfg, w, x, keras):
    return x.reshape((x.shape[0],) + tuple(cfg["target_shape"]))


@layer("Flatten")
def flatten(cfg, w, x, keras):
    if cfg.get("data_format") == "channels_first" and x.ndim > 2:
        x = np.moveaxis(x, 1, -1)
    return x.reshape(x.shape[0], -1)


# --- weighted layers: Dense and transposed convolutions (core) ----------------

def _act(cfg, y):
    a = cfg.get("activation", "linear")
    if isinstance(a, dict):
        a = a.get("config", {}).get("name", a.get("class_name"))
    return numpy_ref.activation(a, y)


@layer("Dense")
def dense(cfg, w, x, keras):
    y = np.tensordot(x, w[0], axes=([x.ndim - 1], [0]))
    if cfg.get("use_bias", True):
        y = y + w[1]
    return _act(cfg, y)


def _conv_transpose(rank):
    def fn(cfg, w, x, keras):
        op = cfg.get("output_padding")
        p = {"rank": rank, "data_format": cfg.get("data_format") or "channels_last",
             "strides": _tuple(cfg.get("strides", 1), rank),
             "dilation_rate": _tuple(cfg.get("dilation_rate", 1), rank),
             "padding": cfg.get("padding", "valid").lower(),
             "output_padding": None if op is None else _tuple(op, rank)}
        y = numpy_ref.layer(x, w[0], w[1] if cfg.get("use_bias", True) else None, p)
        return _act(cfg, y)
    return fn


for _r in (1, 2, 3):
    layer("Conv%dDTranspose" % _r)(_conv_transpose(_r))
# --- conv -------------------------------------------------------------------
# Conv1D/2D/3D from TensorFlow's definition of a convolution (a
# cross-correlation): y[n, o, f] = sum over k, c of
# x[n, o*s + k*d - pad_before, g*C/G + c] * kernel[k, c, f], g = f // (F/G),
# zeros outside x. SAME: out = ceil(n/s), pad_before = total // 2 with
# total = max((out-1)*s + ke - n, 0); VALID: out = (n - ke) // s + 1, no pad;
# causal (Conv1D): (k-1)*d zeros before, then VALID.

def _tuple(v, rank):
    return tuple(int(a) for a in v) if isinstance(v, (list, tuple)) else (int(v),) * rank


def conv_forward(x, kernel, bias, strides, padding, dilation, groups, channels_first):
    """x (N, *sp, C) (or (N, C, *sp)), kernel (*k, C/groups, F), float64."""
    rank = kernel.ndim - 2
    if channels_first:
        x = np.moveaxis(x, 1, -1)
    sp, cin, f = x.shape[1:-1], x.shape[-1], kernel.shape[-1]
    k = kernel.shape[:rank]
    ke = [(k[i] - 1) * dilation[i] + 1 for i in range(rank)]
    if padding == "same":
        out = [-(-sp[i] // strides[i]) for i in range(rank)]
        before = [max((out[i] - 1) * strides[i] + ke[i] - sp[i], 0) // 2 for i in range(rank)]
    elif padding == "causal":
        before = [ke[i] - 1 for i in range(rank)]
        out = [(sp[i] + before[i] - ke[i]) // strides[i] + 1 for i in range(rank)]
    elif padding == "valid":
        before = [0] * rank
        out = [(sp[i] - ke[i]) // strides[i] + 1 for i in range(rank)]
    else:
        raise ValueError("padding " + padding)
    if min(out) < 1:
        raise ValueError("empty output")
    after = [max((out[i] - 1) * strides[i] + ke[i] - sp[i] - before[i], 0) for i in range(rank)]
    xp = np.pad(x, [(0, 0)] + [(before[i], after[i]) for i in range(rank)] + [(0, 0)])
    y = np.zeros((x.shape[0],) + tuple(out) + (f,))
    cg, fg = cin // groups, f // groups
    for kidx in np.ndindex(*k):
        sl = tuple(slice(kidx[i] * dilation[i],
                         kidx[i] * dilation[i] + (out[i] - 1) * strides[i] + 1, strides[i])
                   for i in range(rank))
        patch = xp[(slice(None),) + sl]
        for g in range(groups):
            y[..., g * fg:(g + 1) * fg] += (patch[..., g * cg:(g + 1) * cg]
                                            @ kernel[kidx][:, g * fg:(g + 1) * fg])
    if bias is not None:
        y = y + bias
    return np.moveaxis(y, -1, 1) if channels_first else y


@layer("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D")
def conv(cfg, w, x, keras):
    rank = x.ndim - 2
    y = conv_forward(x, w[0], w[1] if cfg.get("use_bias", True) else None,
                     _tuple(cfg.get("strides", 1), rank), cfg.get("padding", "valid").lower(),
                     _tuple(cfg.get("dilation_rate", 1), rank), int(cfg.get("groups", 1)),
                     cfg.get("data_format") == "channels_first")
    act = cfg.get("activation")
    if isinstance(act, dict):
        act = act.get("config", {}).get("name", act.get("class_name"))
    return numpy_ref.activation(act, y)




def run(layers, x, keras=3):
    """layers: [(class_name, config, [weights as arrays])]"""
    y = np.asarray(x, dtype=np.float64)
    for cls, cfg, w in layers:
        if cls not in LAYERS:
            raise KeyError("no reference for " + cls)
        y = LAYERS[cls](cfg, [np.asarray(a, dtype=np.float64) for a in w], y, keras)
    return y


def run_case(d):
    spec = json.load(open(os.path.join(d, "layers.json")))
    layers = [(l["class_name"], l["config"],
               [np.load(os.path.join(d, f)) for f in l.get("weights", [])])
              for l in spec["layers"]]
    np.save(os.path.join(d, "out.npy"), run(layers, np.load(os.path.join(d, "x.npy")),
                                            spec.get("keras", 3)))


if __name__ == "__main__":
    for case in sys.argv[1:]:
        run_case(case)
