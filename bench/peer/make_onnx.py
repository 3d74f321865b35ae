#!/usr/bin/python3
"""ONNX files for the ONNX Runtime peer, built with Debian's python3-onnx.

Each bench model file deconvd serves (a single Keras transposed-convolution
layer, or a Keras Sequential decoder; both with "weights" naming .npy files)
becomes the graph tf2onnx emits for it, so the peer runs what a user who
converted their Keras model would run:

  - the input and output stay channels-last (Keras's layout) and Transpose
    nodes move to channels-first around the ConvTranspose nodes, which run
    NCHW; inside a chain the tensor stays channels-first between the
    convolutions (tf2onnx's transpose optimizer pushes the transposes out),
  - Conv1DTranspose as TF runs it (conv2d_transpose of height 1 between
    ExpandDims and Squeeze): Unsqueeze, a 2-D ConvTranspose, Squeeze,
  - Keras 'same' padding as explicit ConvTranspose pads (begin total // 2,
    end the rest, total = kernel - stride), output_padding where the kernel
    is shorter than the stride,
  - bias as the ConvTranspose's B input, the activation as its own node,
  - Dense as MatMul + Add, BatchNormalization (inference form, the saved
    moving statistics), LeakyRelu, Reshape on the channels-last tensor.

Weights are the same .npy files deconvd loads, so outputs can be compared.

  make_onnx.py OUT_DIR MODEL.json...     writes OUT_DIR/<model stem>.onnx
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
CONV_T = {"Conv1DTranspose": 1, "Conv2DTranspose": 2, "Conv3DTranspose": 3}
ACTS = {"linear": None, "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}


class Graph:
    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, arr):
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op, inputs, base, **attrs):
        out = self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def act_name(spec):
    name = spec if isinstance(spec, str) else spec.get("config", {}).get("name", spec.get("class_name"))
    if name not in ACTS:
        raise SystemExit(f"make_onnx: activation {name!r} not supported")
    return ACTS[name]


def same_pads(n, k, s):
    """Keras/TF 'same' for a transposed conv: output n*s, crop of the full
    (n-1)*s+k output split begin total//2, end the rest."""
    total = k - s
    if total >= 0:
        return total // 2, total - total // 2, 0
    return 0, 0, -total                    # kernel shorter than the stride: pad the end


def to_first(rank):
    return [0, rank - 1] + list(range(1, rank - 1))


def to_last(rank):
    return [0] + list(range(2, rank)) + [1]


def conv_t(g, x, c, w, shape):
    """x: channels-first tensor of Keras shape `shape` (N, spatial..., C)."""
    nd = len(shape) - 2
    if c.get("data_format", "channels_last") != "channels_last" or c["padding"] != "same":
        raise SystemExit("make_onnx: only channels_last, padding same")
    if any(d != 1 for d in c.get("dilation_rate", [1] * nd)) or c.get("output_padding"):
        raise SystemExit("make_onnx: no dilation, no output_padding")
    k, s = list(c["kernel_size"]), list(c["strides"])
    kernel = w["kernel"]                                 # (k..., out, in)
    wt = np.ascontiguousarray(kernel.transpose([nd + 1, nd] + list(range(nd))))   # (in, out, k...)
    pb, pe, op = zip(*(same_pads(shape[1 + i], k[i], s[i]) for i in range(nd)))
    ins = [x, g.const("W", wt.astype(np.float32))]
    if c["use_bias"]:
        ins.append(g.const("B", w["bias"].astype(np.float32)))
    attrs = dict(kernel_shape=k, strides=s, pads=list(pb) + list(pe))
    if any(op):
        attrs["output_padding"] = list(op)
    y = g.node("ConvTranspose", ins, "conv_transpose", **attrs)
    a = act_name(c["activation"])
    if a:
        y = g.node(a, [y], a.lower())
    return y, [shape[0]] + [shape[1 + i] * s[i] for i in range(nd)] + [c["filters"]]


def build(path):
    with open(path) as f:
        doc = json.load(f)
    base = os.path.dirname(os.path.abspath(path))
    wfiles = doc.get("weights", {})

    def weights(name, files):
        return {k: np.load(os.path.join(base, v)).astype(np.float32) for k, v in files.items()}

    g = Graph()
    if doc["class_name"] in CONV_T:                      # a single layer
        c = doc["config"]
        shape = list(c["batch_input_shape"])
        layers = [(doc["class_name"], c, weights(c["name"], wfiles))]
        in_name = "input"
    elif doc["class_name"] == "Sequential":
        ls = doc["config"]["layers"]
        if ls[0]["class_name"] != "InputLayer":
            raise SystemExit("make_onnx: the model must start with an InputLayer")
        shape = list(ls[0]["config"]["batch_shape"])
        in_name = ls[0]["config"]["name"]
        layers = [(l["class_name"], l["config"], weights(l["config"]["name"], wfiles.get(l["config"]["name"], {})))
                  for l in ls[1:]]
    else:
        raise SystemExit(f"make_onnx: {path}: class {doc['class_name']} not supported")
    in_shape = ["N"] + shape[1:]
    x = in_name
    first = False                        # is x channels-first (for rank > 2)?
    for cls, c, w in layers:
        rank = len(shape)
        if cls == "Conv1DTranspose":
            # TF runs it as conv2d_transpose on (N, 1, L, C) between ExpandDims
            # and Squeeze, so tf2onnx emits a 2-D ConvTranspose of height 1
            if rank != 3:
                raise SystemExit(f"make_onnx: {cls} on rank {rank}")
            if first:
                x = g.node("Transpose", [x], "transpose", perm=to_last(rank))
            x = g.node("Unsqueeze", [x, g.const("axes", np.array([1], np.int64))], "unsqueeze")
            x = g.node("Transpose", [x], "transpose", perm=to_first(4))
            c2 = dict(c, kernel_size=[1] + list(c["kernel_size"]), strides=[1] + list(c["strides"]),
                      dilation_rate=[1] + list(c.get("dilation_rate", [1])))
            w2 = dict(w, kernel=w["kernel"][None])
            x, shape4 = conv_t(g, x, c2, w2, [shape[0], 1] + shape[1:])
            x = g.node("Transpose", [x], "transpose", perm=to_last(4))
            x = g.node("Squeeze", [x, g.const("axes", np.array([1], np.int64))], "squeeze")
            shape, first = [shape4[0]] + shape4[2:], False
        elif cls in CONV_T:
            if rank != CONV_T[cls] + 2:
                raise SystemExit(f"make_onnx: {cls} on rank {rank}")
            if not first:
                x, first = g.node("Transpose", [x], "transpose", perm=to_first(rank)), True
            x, shape = conv_t(g, x, c, w, shape)
        elif cls == "Dense":
            if rank != 2:
                raise SystemExit("make_onnx: Dense on rank > 2")
            x = g.node("MatMul", [x, g.const("kernel", w["kernel"])], "matmul")
            if c["use_bias"]:
                x = g.node("Add", [x, g.const("bias", w["bias"])], "add")
            a = act_name(c["activation"])
            if a:
                x = g.node(a, [x], a.lower())
            shape = shape[:-1] + [c["units"]]
        elif cls == "BatchNormalization":
            if c.get("axis", -1) not in (-1, rank - 1):
                raise SystemExit("make_onnx: BatchNormalization on a non-channel axis")
            if rank > 2 and not first:
                x, first = g.node("Transpose", [x], "transpose", perm=to_first(rank)), True
            n = shape[-1]
            p = [w.get("gamma", np.ones(n, np.float32)), w.get("beta", np.zeros(n, np.float32)),
                 w.get("moving_mean", np.zeros(n, np.float32)), w.get("moving_variance", np.ones(n, np.float32))]
            x = g.node("BatchNormalization", [x] + [g.const(nm, v) for nm, v in zip(("scale", "b", "mean", "var"), p)],
                       "batch_norm", epsilon=float(c["epsilon"]))
        elif cls == "LeakyReLU":
            x = g.node("LeakyRelu", [x], "leaky_relu", alpha=float(c.get("negative_slope", c.get("alpha", 0.3))))
        elif cls == "ReLU" and not c.get("max_value") and not c.get("threshold") and not c.get("negative_slope"):
            x = g.node("Relu", [x], "relu")
        elif cls == "Activation":
            a = act_name(c["activation"])
            if a:
                x = g.node(a, [x], a.lower())
        elif cls == "Reshape":
            if first:                    # Keras reshapes the channels-last order
                x, first = g.node("Transpose", [x], "transpose", perm=to_last(rank)), False
            shape = [shape[0]] + list(c["target_shape"])
            x = g.node("Reshape", [x, g.const("shape", np.array([-1] + shape[1:], np.int64))], "reshape")
        elif cls in ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout"):
            continue
        else:
            raise SystemExit(f"make_onnx: layer class {cls} not supported")
    if first:
        x = g.node("Transpose", [x], "transpose", perm=to_last(len(shape)))
    g.nodes.append(helper.make_node("Identity", [x], ["output"], name="output"))
    graph = helper.make_graph(g.nodes, os.path.splitext(os.path.basename(path))[0],
                              [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N"] + shape[1:])],
                              g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="deconvd-bench make_onnx.py")
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for p in sys.argv[2:]:
        m = build(p)
        onnx.save(m, os.path.join(out, os.path.splitext(os.path.basename(p))[0] + ".onnx"))


if __name__ == "__main__":
    main()
