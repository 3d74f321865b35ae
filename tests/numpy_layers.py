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

def _act(cfg, y, keras):
    """The layer's own activation, with the semantics of the Keras that wrote it."""
    return numpy_ref.activation(cfg.get("activation"), y, keras)


@layer("Dense")
def dense(cfg, w, x, keras):
    y = np.tensordot(x, w[0], axes=([x.ndim - 1], [0]))
    if cfg.get("use_bias", True):
        y = y + w[1]
    return _act(cfg, y, keras)


def _conv_transpose(rank):
    def fn(cfg, w, x, keras):
        op = cfg.get("output_padding")
        p = {"rank": rank, "data_format": cfg.get("data_format") or "channels_last",
             "strides": _tuple(cfg.get("strides", 1), rank),
             "dilation_rate": _tuple(cfg.get("dilation_rate", 1), rank),
             "padding": cfg.get("padding", "valid").lower(),
             "output_padding": None if op is None else _tuple(op, rank)}
        y = numpy_ref.layer(x, w[0], w[1] if cfg.get("use_bias", True) else None, p)
        return _act(cfg, y, keras)
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
    return _act(cfg, y, keras)


# --- glue -------------------------------------------------------------------
# BatchNormalization, the inference identities, the activation layers,
# UpSampling / Cropping / ZeroPadding. Written from the Keras documentation
# of each layer, in float64.

def _channels_first(cfg):
    return cfg.get("data_format") == "channels_first"


def _spatial_axes(cfg, x, nsp):
    first = 2 if _channels_first(cfg) else 1
    return list(range(first, first + nsp))


@layer("BatchNormalization")
def batch_normalization(cfg, w, x, keras):
    axis = cfg.get("axis", -1)
    if isinstance(axis, list):
        axis = axis[0]
    axis %= x.ndim
    c = x.shape[axis]
    w = list(w)
    gamma = w.pop(0) if cfg.get("scale", True) else np.ones(c)
    beta = w.pop(0) if cfg.get("center", True) else np.zeros(c)
    mean, var = w
    eps = cfg.get("epsilon", 1e-3)
    # tf.keras 2's fused kernel (4-D or 5-D input normalized on axis 1 or
    # the last; not with renorm) raises epsilon to 1.001e-5.
    if (keras == 2 and cfg.get("fused", True) is not False and not cfg.get("renorm", False)
            and x.ndim in (4, 5) and axis in (1, x.ndim - 1)):
        eps = max(eps, 1.001e-5)
    bshape = [1] * x.ndim
    bshape[axis] = c
    r = lambda v: np.reshape(v, bshape)
    return (x - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


@layer("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
       "GaussianDropout", "AlphaDropout", "ActivityRegularization")
def inference_identity(cfg, w, x, keras):
    return x


def _softmax(x, axes):
    m = np.max(x, axis=axes, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axes, keepdims=True)


@layer("Activation")
def activation_layer(cfg, w, x, keras):
    return numpy_ref.activation(cfg["activation"], x, keras)


@layer("ReLU")
def relu_layer(cfg, w, x, keras):
    # Keras: x above the threshold, else 0, capped at max_value; below the
    # threshold, a slope of negative_slope from the threshold.
    th = cfg.get("threshold", 0.0) or 0.0
    slope = cfg.get("negative_slope", 0.0) or 0.0
    cap = cfg.get("max_value")
    pos = np.where(x > th, x, 0.0)
    if cap is not None:
        pos = np.minimum(pos, cap)
    return pos + np.where(x < th, slope * (x - th), 0.0)


@layer("LeakyReLU")
def leaky_relu_layer(cfg, w, x, keras):
    slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
    return np.where(x > 0, x, slope * x)


@layer("ELU")
def elu_layer(cfg, w, x, keras):
    alpha = cfg.get("alpha", 1.0)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@layer("Softmax")
def softmax_layer(cfg, w, x, keras):
    axis = cfg.get("axis", -1)
    return _softmax(x, tuple(axis) if isinstance(axis, list) else axis)


@layer("PReLU")
def prelu_layer(cfg, w, x, keras):
    alpha = w[0][None]                          # broadcasts over the batch
    return np.maximum(x, 0) + alpha * np.minimum(x, 0)


def _pairs(v, nsp):
    """Cropping/ZeroPadding forms → [(before, after)] per spatial axis."""
    if isinstance(v, int):
        return [(v, v)] * nsp
    if nsp == 1:
        return [tuple(v)]
    return [(e, e) if isinstance(e, int) else tuple(e) for e in v]


def _upsample(nsp, default):
    def fn(cfg, w, x, keras):
        size = cfg.get("size", default)
        size = [size] * nsp if isinstance(size, int) else size
        if cfg.get("interpolation", "nearest").lower() == "bilinear":
            return _bilinear(x, size, _channels_first(cfg))
        for ax, s in zip(_spatial_axes(cfg, x, nsp), size):
            x = np.repeat(x, s, axis=ax)
        return x
    return fn


def _bilinear_axis(n, s):
    """Half-pixel-centre sample positions of an n → n*s resize: indices of
    the two neighbours (clamped to the edge) and the weight of the second.
    The positions are float32, (o + 0.5) * (n / (n*s)) - 0.5 as TensorFlow's
    ResizeBilinear computes them: with a scale like 1/3 that float32 cannot
    hold, the weights differ from exact ones by ~1e-7."""
    f = np.float32
    pos = ((np.arange(n * s, dtype=f) + f(0.5)) * (f(n) / f(n * s)) - f(0.5)).astype(np.float64)
    lo = np.floor(pos)
    t = pos - lo
    lo = lo.astype(int)
    return np.clip(lo, 0, n - 1), np.clip(lo + 1, 0, n - 1), t


def _bilinear(x, size, cf):
    if cf:
        x = np.moveaxis(x, 1, -1)
    y0, y1, ty = _bilinear_axis(x.shape[1], size[0])
    x0, x1, tx = _bilinear_axis(x.shape[2], size[1])
    ty = ty[None, :, None, None]
    tx = tx[None, None, :, None]
    rows = x[:, y0] * (1 - ty) + x[:, y1] * ty
    y = rows[:, :, x0] * (1 - tx) + rows[:, :, x1] * tx
    return np.moveaxis(y, -1, 1) if cf else y


def _crop(nsp, default):
    def fn(cfg, w, x, keras):
        sl = [slice(None)] * x.ndim
        for ax, (a, b) in zip(_spatial_axes(cfg, x, nsp), _pairs(cfg.get("cropping", default), nsp)):
            sl[ax] = slice(a, x.shape[ax] - b)
        return x[tuple(sl)]
    return fn


def _pad(nsp, default):
    def fn(cfg, w, x, keras):
        widths = [(0, 0)] * x.ndim
        for ax, p in zip(_spatial_axes(cfg, x, nsp), _pairs(cfg.get("padding", default), nsp)):
            widths[ax] = p
        return np.pad(x, widths)
    return fn


layer("UpSampling1D")(_upsample(1, 2))
layer("UpSampling2D")(_upsample(2, 2))
layer("UpSampling3D")(_upsample(3, 2))
layer("Cropping1D")(_crop(1, 1))
layer("Cropping2D")(_crop(2, 0))
layer("Cropping3D")(_crop(3, 1))
layer("ZeroPadding1D")(_pad(1, 1))
layer("ZeroPadding2D")(_pad(2, 1))
layer("ZeroPadding3D")(_pad(3, 1))


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
