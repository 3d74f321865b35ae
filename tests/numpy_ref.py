#!/usr/bin/env python3
"""numpy_ref.py — an independent NumPy reference for Keras/TensorFlow
transposed convolutions (Conv1DTranspose/2D/3D, tf.nn.conv*_transpose).

Written from TensorFlow's conv_transpose rule, sharing no code with deconvd:
every input position i and kernel tap t scatter into position i*s + t*d of a
'full' signal of length (n-1)*s + (k-1)*d + 1 (no kernel flip); the output
keeps `out` positions from pad_before (SAME: max(full - out, 0) // 2,
VALID: 0), zero past the end of 'full'; then bias, then the activation
(params "keras": 2 (default) or 3 picks tf.keras 2's or Keras 3's
definitions; softmax and the other axial ones over the last axis of the
tensor as laid out). Computed in float64.

Usage:
    numpy_ref.py CASE_DIR...    each CASE_DIR holds params.json, x.npy,
                                kernel.npy and (with a bias) bias.npy; writes
                                out.npy (float64) there
    numpy_ref.py --selftest     checks the reference against TensorFlow's own
                                literal unit-test values; exit status 0 if ok
    numpy_ref.py --activations DIR...
                                each DIR holds x.npy and cases.json
                                ([{"activation": spec, "keras": 3}, ...]);
                                writes act<i>.npy, case i applied to x

params.json: {"rank": 2, "strides": [2, 2], "dilation_rate": [1, 1],
              "padding": "same"|"valid", "data_format": "channels_last"|
              "channels_first", "output_padding": null|[..],
              "output_shape": null|[spatial sizes], "activation": "relu",
              "keras": 2|3, "use_bias": true}
With output_shape null the spatial sizes follow Keras deconv_output_length.
"""
import itertools
import json
import math
import os
import sys

import numpy as np


def keras_output_length(n, k, s, d, padding, output_padding=None):
    ke = (k - 1) * d + 1
    if output_padding is None:
        if padding == "valid":
            return n * s + max(ke - s, 0)
        return n * s
    pad = ke // 2 if padding == "same" else 0
    return (n - 1) * s + ke - 2 * pad + output_padding


def conv_transpose(x, w, strides, dilations, padding, out_sizes):
    """x: (N, *spatial, C_in) channels last; w: (*kernel, C_out, C_in).
    Returns (N, *out_sizes, C_out) in float64."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    rank = x.ndim - 2
    n = x.shape[1:-1]
    k = w.shape[:rank]
    c_out = w.shape[rank]
    ke = [(k[j] - 1) * dilations[j] + 1 for j in range(rank)]
    full = [(n[j] - 1) * strides[j] + ke[j] for j in range(rank)]
    buf = np.zeros((x.shape[0],) + tuple(full) + (c_out,))
    for taps in itertools.product(*(range(kk) for kk in k)):
        contrib = np.einsum("...i,oi->...o", x, w[taps])       # (N, *n, C_out)
        where = tuple(slice(t * d, t * d + (m - 1) * s + 1, s)
                      for t, d, m, s in zip(taps, dilations, n, strides))
        buf[(slice(None),) + where] += contrib
    out = np.zeros((x.shape[0],) + tuple(out_sizes) + (c_out,))
    src, dst = [slice(None)], [slice(None)]
    for j in range(rank):
        before = max(full[j] - out_sizes[j], 0) // 2 if padding == "same" else 0
        keep = max(0, min(out_sizes[j], full[j] - before))
        src.append(slice(before, before + keep))
        dst.append(slice(0, keep))
    out[tuple(dst)] = buf[tuple(src)]
    return out


_erf = np.vectorize(math.erf)


def softplus(y):
    return np.logaddexp(0.0, y)


def sigmoid(y):
    return 1.0 / (1.0 + np.exp(-y))


def relu6(y):
    return np.clip(y, 0.0, 6.0)


def _sparsemax(y, axis):
    """Keras 3.15 ops.sparsemax, every backend: sort descending, cumulative
    sums cs, support zs > (cs - 1) / r, and tau = (sum of cs over the
    support - 1) / k -- not the paper's (cs[k] - 1) / k (keras-team/keras
    issue 23425, fixed after 3.15)."""
    z = np.moveaxis(y, axis, -1)
    zs = -np.sort(-z, axis=-1)
    cs = np.cumsum(zs, axis=-1)
    r = np.arange(1, z.shape[-1] + 1)
    support = zs - (cs - 1.0) / r > 0
    k = support.sum(axis=-1, keepdims=True)
    tau = (np.where(support, cs, 0.0).sum(axis=-1, keepdims=True) - 1.0) / k
    return np.moveaxis(np.maximum(z - tau, 0.0), -1, axis)


def _log_softmax(y, axis):
    m = y.max(axis=axis, keepdims=True)
    return y - m - np.log(np.exp(y - m).sum(axis=axis, keepdims=True))


def _softmax(y, axis):
    e = np.exp(y - y.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _glu(y, axis):
    if y.shape[axis] % 2:
        raise ValueError("glu: axis size must be even, got %d" % y.shape[axis])
    a, b = np.split(y, 2, axis=axis)
    return a * sigmoid(b)


# Keras 3.15 definitions (keras/src/activations/activations.py, the ops and
# the TensorFlow backend's nn.py), float64; parameters with Keras's defaults.
_KERAS3 = {
    "linear": lambda y, p: y,
    "relu": lambda y, p: np.maximum(y, 0.0),
    "relu6": lambda y, p: relu6(y),
    "leaky_relu": lambda y, p: np.where(y > 0, y, p.get("negative_slope", 0.2) * y),
    "sigmoid": lambda y, p: sigmoid(y),
    "tanh": lambda y, p: np.tanh(y),
    "softplus": lambda y, p: softplus(y),
    "softsign": lambda y, p: y / (1.0 + np.abs(y)),
    "elu": lambda y, p: np.where(y > 0, y, p.get("alpha", 1.0) * np.expm1(np.minimum(y, 0.0))),
    "selu": lambda y, p: 1.0507009873554805 * np.where(
        y > 0, y, 1.6732632423543772 * np.expm1(np.minimum(y, 0.0))),
    "exponential": lambda y, p: np.exp(y),
    "hard_sigmoid": lambda y, p: relu6(y + 3.0) / 6.0,
    "silu": lambda y, p: y * sigmoid(y),
    "gelu": lambda y, p: (0.5 * y * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) *
                                                    (y + 0.044715 * y ** 3))))
    if p.get("approximate", False) else 0.5 * y * (1.0 + _erf(y / math.sqrt(2.0))),
    "mish": lambda y, p: y * np.tanh(softplus(y)),
    "hard_silu": lambda y, p: y * relu6(y + 3.0) / 6.0,
    "log_sigmoid": lambda y, p: -softplus(-y),
    "softmax": lambda y, p: _softmax(y, p.get("axis", -1)),
    "celu": lambda y, p: np.maximum(y, 0.0) + p.get("alpha", 1.0) * np.expm1(
        np.minimum(y, 0.0) / p.get("alpha", 1.0)),
    "glu": lambda y, p: _glu(y, p.get("axis", -1)),
    "hard_shrink": lambda y, p: np.where(np.abs(y) > p.get("threshold", 0.5), y, 0.0),
    "hard_tanh": lambda y, p: np.clip(y, -1.0, 1.0),
    "log_softmax": lambda y, p: _log_softmax(y, p.get("axis", -1)),
    "soft_shrink": lambda y, p: np.where(
        y > p.get("threshold", 0.5), y - p.get("threshold", 0.5),
        np.where(y < -p.get("threshold", 0.5), y + p.get("threshold", 0.5), 0.0)),
    "sparse_plus": lambda y, p: np.where(y <= -1, 0.0, np.where(y < 1, (y + 1) ** 2 / 4, y)),
    "sparse_sigmoid": lambda y, p: np.where(y <= -1, 0.0, np.where(y >= 1, 1.0, 0.5 * (y + 1))),
    "sparsemax": lambda y, p: _sparsemax(y, p.get("axis", -1)),
    "squareplus": lambda y, p: (y + np.sqrt(y * y + p.get("b", 4.0))) / 2.0,
    "tanh_shrink": lambda y, p: y - np.tanh(y),
}
_ALIASES = {"swish": "silu", "hard_swish": "hard_silu", None: "linear"}
# Where tf.keras 2.x (tf_keras/activations.py, tf_keras/backend.py) differs.
_KERAS2 = dict(_KERAS3, hard_sigmoid=lambda y, p: np.clip(0.2 * y + 0.5, 0.0, 1.0))


def activation_spec(spec):
    """(name, params) from a config's "activation": a name, None,
    {"class_name": "function", "config": name} or {"class_name": name,
    "config": {params}}."""
    if isinstance(spec, dict):
        cfg = spec.get("config")
        if spec.get("class_name") == "function":
            return activation_spec(cfg if isinstance(cfg, str) else spec.get("registered_name"))
        return activation_spec(spec["class_name"])[0], dict(cfg or {})
    return _ALIASES.get(spec, spec), {}


def activation(spec, y, keras=2, **params):
    """spec applied to y with the definitions of Keras `keras` (2 or 3);
    the axial ones (softmax, log_softmax, sparsemax, glu) on the last axis
    unless params say otherwise."""
    name, p = activation_spec(spec)
    p.update(params)
    table = _KERAS3 if keras == 3 else _KERAS2
    if name not in table:
        raise ValueError("unknown activation %r" % (name,))
    return table[name](np.asarray(y, dtype=np.float64), p)


def run_activations(d):
    """d/cases.json: [{"activation": spec, "keras": 2|3}, ...] applied to
    d/x.npy; writes d/act<i>.npy."""
    with open(os.path.join(d, "cases.json")) as f:
        cases = json.load(f)
    x = np.load(os.path.join(d, "x.npy"))
    for i, c in enumerate(cases):
        np.save(os.path.join(d, "act%d.npy" % i), activation(c["activation"], x, c["keras"]))


def layer(x, w, b, p):
    """Whole layer on x laid out per p["data_format"]."""
    rank = p["rank"]
    cf = p["data_format"] == "channels_first"
    if cf:
        x = np.moveaxis(x, 1, -1)
    n = x.shape[1:-1]
    k = w.shape[:rank]
    out = p.get("output_shape")
    if out is None:
        op = p.get("output_padding")
        out = [keras_output_length(n[j], k[j], p["strides"][j], p["dilation_rate"][j],
                                   p["padding"], None if op is None else op[j])
               for j in range(rank)]
    y = conv_transpose(x, w, p["strides"], p["dilation_rate"], p["padding"], out)
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64)
    if cf:
        y = np.moveaxis(y, -1, 1)
    return activation(p.get("activation"), y, p.get("keras", 2))


def run_case(d):
    with open(os.path.join(d, "params.json")) as f:
        p = json.load(f)
    x = np.load(os.path.join(d, "x.npy"))
    w = np.load(os.path.join(d, "kernel.npy"))
    b = np.load(os.path.join(d, "bias.npy")) if p.get("use_bias") else None
    np.save(os.path.join(d, "out.npy"), layer(x, w, b, p).astype(np.float64))


def selftest():
    ones_x = np.ones((2, 6, 4, 3))
    ones_w = np.ones((3, 3, 2, 3))
    # testConv2DTransposeSame
    y = conv_transpose(ones_x, ones_w, [2, 2], [1, 1], "same", [12, 8])
    for h, w_ in itertools.product(range(12), range(8)):
        h_in = h % 2 == 0 and 0 < h < 11
        w_in = w_ % 2 == 0 and 0 < w_ < 7
        want = 3.0 + (9.0 if h_in and w_in else 3.0 if h_in or w_in else 0.0)
        assert (y[:, h, w_, :] == want).all(), ("same", h, w_, y[0, h, w_, 0], want)
    # testConv2DTransposeValid: output 13x9 is the whole full signal
    y = conv_transpose(ones_x, ones_w, [2, 2], [1, 1], "valid", [13, 9])
    for h, w_ in itertools.product(range(13), range(9)):
        ch = 2 if h % 2 == 0 and 0 < h < 12 else 1
        cw = 2 if w_ % 2 == 0 and 0 < w_ < 8 else 1
        assert (y[:, h, w_, :] == 3.0 * ch * cw).all(), ("valid", h, w_)
    # testConv2DTransposeSingleStride
    y = conv_transpose(ones_x, ones_w, [1, 1], [1, 1], "same", [6, 4])
    for h, w_ in itertools.product(range(6), range(4)):
        want = 4 * 3.0
        h_in, w_in = 0 < h < 5, 0 < w_ < 3
        want += 5 * 3.0 if h_in and w_in else 2 * 3.0 if h_in or w_in else 0.0
        assert (y[:, h, w_, :] == want).all(), ("single stride", h, w_)
    # Keras output lengths
    assert keras_output_length(6, 3, 2, 1, "same", None) == 12
    assert keras_output_length(6, 3, 2, 1, "valid", None) == 13
    assert keras_output_length(5, 1, 3, 1, "valid", None) == 15
    assert keras_output_length(5, 4, 2, 1, "same", 1) == 9
    # a dilated tap lands d apart: one input, one 2-tap kernel, d=3
    y = conv_transpose(np.ones((1, 1, 1)), np.array([[[1.0]], [[2.0]]]), [1], [3], "valid", [4])
    assert y.ravel().tolist() == [1.0, 0.0, 0.0, 2.0], y.ravel()
    # softmax over the last axis as laid out
    s = activation("softmax", np.arange(6.0).reshape(2, 3))
    assert np.allclose(s.sum(axis=-1), 1.0)
    # Keras 3.15's own outputs: sparsemax([0, .5, 1]) (keras-team/keras#23425),
    # and hard_sigmoid's two definitions at 1
    assert np.allclose(activation("sparsemax", np.array([0.0, 0.5, 1.0]), 3), [0, 0, 0.25])
    assert np.isclose(activation("hard_sigmoid", np.array(1.0), 3), 4.0 / 6.0)
    assert np.isclose(activation("hard_sigmoid", np.array(1.0), 2), 0.7)
    print("numpy_ref selftest ok")


def main(argv):
    if argv[1:] == ["--selftest"]:
        selftest()
        return 0
    if argv[1:2] == ["--activations"]:
        for d in argv[2:]:
            run_activations(d)
        return 0
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    for d in argv[1:]:
        run_case(d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
