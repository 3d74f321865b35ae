#!/usr/bin/env python3
"""numpy_ref.py — an independent NumPy reference for Keras/TensorFlow
transposed convolutions (Conv1DTranspose/2D/3D, tf.nn.conv*_transpose).

Written from TensorFlow's conv_transpose rule, sharing no code with deconvd:
every input position i and kernel tap t scatter into position i*s + t*d of a
'full' signal of length (n-1)*s + (k-1)*d + 1 (no kernel flip); the output
keeps `out` positions from pad_before (SAME: max(full - out, 0) // 2,
VALID: 0), zero past the end of 'full'; then bias, then the activation
(TF 2.x definitions; softmax over the last axis of the tensor as laid out).
Computed in float64.

Usage:
    numpy_ref.py CASE_DIR...    each CASE_DIR holds params.json, x.npy,
                                kernel.npy and (with a bias) bias.npy; writes
                                out.npy (float64) there
    numpy_ref.py --selftest     checks the reference against TensorFlow's own
                                literal unit-test values; exit status 0 if ok

params.json: {"rank": 2, "strides": [2, 2], "dilation_rate": [1, 1],
              "padding": "same"|"valid", "data_format": "channels_last"|
              "channels_first", "output_padding": null|[..],
              "output_shape": null|[spatial sizes], "activation": "relu",
              "use_bias": true}
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


def activation(name, y):
    """TF 2.x activations; softmax over the last axis of y."""
    if name in (None, "linear"):
        return y
    if name == "relu":
        return np.maximum(y, 0.0)
    if name == "relu6":
        return np.clip(y, 0.0, 6.0)
    if name == "leaky_relu":
        return np.where(y >= 0, y, 0.2 * y)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-y))
    if name == "tanh":
        return np.tanh(y)
    if name == "softplus":
        return softplus(y)
    if name == "softsign":
        return y / (1.0 + np.abs(y))
    if name == "elu":
        return np.where(y > 0, y, np.expm1(np.minimum(y, 0.0)))
    if name == "selu":
        return 1.0507009873554805 * np.where(
            y > 0, y, 1.6732632423543772 * np.expm1(np.minimum(y, 0.0)))
    if name == "exponential":
        return np.exp(y)
    if name == "hard_sigmoid":
        return np.clip(0.2 * y + 0.5, 0.0, 1.0)
    if name in ("swish", "silu"):
        return y / (1.0 + np.exp(-y))
    if name == "gelu":
        return 0.5 * y * (1.0 + _erf(y / math.sqrt(2.0)))
    if name == "mish":
        return y * np.tanh(softplus(y))
    if name == "hard_silu":
        return y * np.clip(y + 3.0, 0.0, 6.0) / 6.0
    if name == "log_sigmoid":
        return -softplus(-y)
    if name == "softmax":
        e = np.exp(y - y.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError("unknown activation %r" % name)


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
    return activation(p.get("activation"), y)


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
    print("numpy_ref selftest ok")


def main(argv):
    if argv[1:] == ["--selftest"]:
        selftest()
        return 0
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    for d in argv[1:]:
        run_case(d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
