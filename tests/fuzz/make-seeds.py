#!/usr/bin/python3
"""Writes the hand-made seed corpora under tests/fuzz/corpus/<harness>/.

Run from anywhere: /usr/bin/python3 tests/fuzz/make-seeds.py
Only files named seed-* are (re)written; anything else in the corpus
directories (minimized inputs added on purpose) is left alone. Standard
library only: the .npy images are built byte by byte, exactly as NumPy's
format.write_array lays them out, plus variations it does not write.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


# ---- KServe: 4-byte little-endian word (header length, limit flags), body -

def kserve(name, body, header_len=0):
    if isinstance(body, str):
        body = body.encode()
    write("kserve", name, struct.pack("<I", header_len) + body)


def kinput(shape, datatype, data=None, name="input", params=None, **extra):
    i = {"name": name, "shape": shape, "datatype": datatype}
    if data is not None:
        i["data"] = data
    if params is not None:
        i["parameters"] = params
    i.update(extra)
    return i


def kserve_binary(name, shape, datatype, payload, **top):
    hdr = dict(top)
    hdr["inputs"] = [kinput(shape, datatype, params={"binary_data_size": len(payload)})]
    h = compact(hdr).encode()
    kserve(name, h + payload, len(h))


kserve("fp32-flat.json", compact({"inputs": [kinput([1, 2, 2], "FP32", [1, 2, 3, 4])]}))
kserve("fp32-nested-id.json", json.dumps({
    "id": "req-42", "parameters": {"binary_data_output": False},
    "inputs": [kinput([1, 2, 2, 1], "FP32", [[[[0.5], [-1.25]], [[3e-5], [1e10]]]])],
    "outputs": [{"name": "output", "parameters": {"binary_data": False}}]}, indent=1))
kserve("fp32-long.json", compact({"inputs": [kinput(
    [2, 4, 8], "FP32", [round((i * 37 % 101) / 7 - 5, 6) for i in range(64)])]}))
kserve("fp32-long-nested.json", compact({"inputs": [kinput(
    [2, 3, 4], "FP32", [[[i * 4 + j + 0.5 for j in range(4)] for i in range(3)] for _ in range(2)])]}))
kserve("fp16.json", compact({"inputs": [kinput([4], "FP16", [65504, -0.0001, 1.5, 0])]}))
kserve("bf16.json", compact({"inputs": [kinput([2, 2], "BF16", [[3.14159, -2], [1e38, 7]])]}))
kserve("fp64.json", compact({"inputs": [kinput([3], "FP64", [1e-300, 3.4028234e38, -0.1])]}))
kserve("int8.json", compact({"inputs": [kinput([1, 4], "INT8", [-128, 127, 0, 5])]}))
kserve("uint8-long.json", compact({"inputs": [kinput([1, 32], "UINT8", list(range(0, 256, 8)))]}))
kserve("int64.json", compact({"inputs": [kinput([2], "INT64", [9007199254740992, -3])]}))
kserve("uint32.json", compact({"inputs": [kinput([2], "UINT32", [4294967295, 0])]}))
kserve("bool.json", compact({"inputs": [kinput([2, 2], "BOOL", [[True, False], [False, True]])]}))
kserve("spaced.json", '{ "inputs" : [ { "name" : "x" , "shape" : [ 3 ] , "datatype" : "FP32" ,'
       ' "data" : [ 1 ,\n 2.5e+1 ,\t-3 ] } ] }')
kserve("nan.json", '{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[NaN, 1]}]}')
kserve("overflow.json", '{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1e39, 1]}]}')
kserve("shape-mismatch.json", compact({"inputs": [kinput([3], "FP32", [1, 2])]}))
kserve("ragged.json", compact({"inputs": [kinput([2, 2], "FP32", [[1, 2], [3]])]}))
kserve("two-inputs.json", compact({"inputs": [kinput([1], "FP32", [1]), kinput([1], "FP32", [2])]}))
# double rounding: 1 + 2^-24 (a float32 midpoint) as Python prints the double
# just above it; correctly rounded it is 1.0000001, through a double 1.0
kserve("midpoint-short.json", compact({"inputs": [kinput([1], "FP32", [1.0000000596046448])]}))
kserve("midpoint-long.json", compact({"inputs": [kinput([3], "FP32", [1.0000000596046448, 0.5,
                                                                      -1.0000000596046448])]}))
kserve("midpoint-int64.json", compact({"inputs": [kinput([1], "INT64", [18014399583223809])]}))
kserve("empty-outputs-spaced.json", '{"inputs":[{"name":"x","shape":[1],"datatype":"FP32",'
       '"data":[1]}],"outputs":[' + ' ' * 40 + ']}')
kserve_binary("binary-fp32.bin", [1, 2, 2], "FP32", struct.pack("<4f", 1, -2, 0.5, 3e38),
              id="bin")
kserve_binary("binary-fp16.bin", [2, 2], "FP16", struct.pack("<4e", 1, -2, 0.5, 65504))
kserve_binary("binary-bf16.bin", [2], "BF16", b"\x80\x3f\x00\xc0")
kserve_binary("binary-fp64.bin", [3], "FP64", struct.pack("<3d", 1e-40, 1e300, -7))
kserve_binary("binary-int32.bin", [2, 2], "INT32", struct.pack("<4i", -5, 7, 2**31 - 1, -2**31),
              outputs=[{"name": "output", "parameters": {"binary_data": True}}])
kserve_binary("binary-uint64.bin", [2], "UINT64", struct.pack("<2Q", 2**64 - 1, 3))
kserve_binary("binary-bool.bin", [4], "BOOL", b"\x00\x01\x02\xff")
kserve_binary("binary-int8.bin", [1, 3], "INT8", b"\x80\x7f\x00",
              parameters={"binary_data_output": True})
hdr = compact({"inputs": [kinput([2], "FP32", params={"binary_data_size": 8})]}).encode()
kserve("binary-short.bin", hdr + b"\x00\x00\x80\x3f", len(hdr))
# Triton's shared memory extension: tensors named by region, no data
shm = {"shared_memory_region": "in", "shared_memory_byte_size": 16, "shared_memory_offset": 64}
kserve("shm-input.json", compact({"inputs": [kinput([2, 2], "FP32", params=shm)]}))
kserve("shm-input-int16-output.json", compact({
    "inputs": [kinput([1, 3], "INT16", params={"shared_memory_region": "a.b-c",
                                              "shared_memory_byte_size": 6})],
    "outputs": [{"name": "output", "parameters": {"shared_memory_region": "out",
                                                  "shared_memory_byte_size": 4096}}]}))
kserve("shm-output-only.json", compact({"inputs": [kinput([2], "FP32", [1, 2])], "outputs": [
    {"name": "output", "parameters": {"shared_memory_region": "o", "shared_memory_byte_size": 8,
                                      "shared_memory_offset": 4, "binary_data": True}}]}))
kserve("shm-size-mismatch.json", compact({"inputs": [kinput([3], "FP32", params=shm)]}))
kserve("shm-and-data.json", compact({"inputs": [kinput([2, 2], "FP32", [1, 2, 3, 4], params=shm)]}))
kserve("shm-no-size.json", compact({"inputs": [kinput([1], "FP32", params={
    "shared_memory_region": "r"})]}))
kserve("binary-no-header-length.bin", hdr + struct.pack("<2f", 1, 2), 0)
kserve("header-past-end.json", compact({"inputs": [kinput([1], "FP32", [1])]}), 0x3FFFFFFF)
# header word bit 31: element limit 64; bit 30: nesting limit 3
kserve("limit-elems.json", compact({"inputs": [kinput([100], "FP32", [i / 4 for i in range(100)])]}),
       0x80000000)
kserve("limit-depth.json", compact({"inputs": [kinput([1, 1, 2, 2], "FP32", [[[[1, 2], [3, 4]]]])]}),
       0x40000000)

# ---- TF Serving bodies, and ops-endpoint bodies (same harness) ----------

tf = {
    "instances-nested.json": {"instances": [[[1.0], [2.0]], [[3.0], [4.0]]]},
    "instances-objects.json": {"instances": [{"x": [[1, 2], [3, 4]]}, {"x": [[5, 6], [7, 8]]}]},
    "instances-scalars.json": {"instances": [1.5, -2.5, 3e-8]},
    "instances-scalar-objects.json": {"instances": [{"x": 1}, {"x": 2}]},
    "instances-long.json": {"instances": [[round(i * 0.37 - 3, 4) for i in range(24)]
                                          for _ in range(3)]},
    "inputs-array.json": {"inputs": [[1, 2], [3, 4]]},
    "inputs-object.json": {"inputs": {"input_1": [[[0.5, -0.5]], [[1e-3, 1e3]]]}},
    "inputs-long.json": {"inputs": {"x": [[[i + 0.25 for i in range(8)] for _ in range(4)]]}},
    "instances-mismatch.json": {"instances": [{"x": [1, 2]}, {"y": [3, 4]}]},
    "instances-ragged.json": {"instances": [[1, 2], [3]]},
    "both.json": {"instances": [[1]], "inputs": [[1]]},
    "ops-conv2d.json": {"input": [[[[1], [2]], [[3], [4]]]],
                        "filters": {"shape": [2, 2, 1, 1], "data": [1, 0, 0, 1]},
                        "output_shape": [1, 3, 3, 1], "strides": [1, 1], "padding": "VALID"},
    "ops-long.json": {"input": {"shape": [1, 4, 4, 1], "data": [i * 0.5 for i in range(16)]},
                      "filters": [[[[1.0]]]], "strides": 2, "padding": "SAME",
                      "data_format": "NHWC"},
}
for n, obj in tf.items():
    write("tfserving", n, compact(obj))
write("tfserving", "midpoint-short.json", '{"inputs": [[1.0000000596046448]]}')
write("tfserving", "midpoint-max.json", '{"instances": [3.4028235677973366e38]}')
write("tfserving", "instances-spaced.json", '{\n  "instances": [\n    [1, 2 ],\n    [ 3,4]\n  ]\n}\n')
write("tfserving", "instances-nan.json", '{"instances": [[NaN, Infinity, -Infinity]]}')
write("tfserving", "plain-tensor.json", '[[1.5, 2.5], [3.5, 4.5]]')

# ---- Float codec: numbers, arrays, and bytes read as float32 chunks -----

floats = {
    "zero": "0", "negzero": "-0", "simple": "1.5", "max": "3.4028235e+38",
    "max-plus-half-ulp": "3.40282356779733661637539395458142568448e38",
    "min-subnormal": "1e-45", "tiny": "7.006492321624085e-46",
    "normal-min": "1.17549435e-38", "midpoint": "16777217",
    "long-midpoint": "1.00000005960464477539062500000001",
    "many-digits": "0.000000000000000000000123456789012345678901234567890123456789",
    "exp-huge": "1e99999999999", "exp-tiny": "-1e-99999999999", "overflow": "1e39",
    "leading-zero": "01", "trailing-dot": "1.", "plus": "+1", "nan": "NaN",
    "array-flat": "[1,2,3.5,-4e-3]",
    "array-spaced": " [ 1 ,\n -2.5e-3 ,\t7 ] ",
    "array-nested": "[[1,2],[3,4],[5,6]]",
    "array-deep": "[[[[[[[[1]]]]]]]]",
    "array-too-deep": "[[[[[[[[[1]]]]]]]]]",
    "array-empty": "[]", "array-empty-rows": "[[],[]]", "array-ragged": "[[1,2],[3]]",
    "array-mixed": "[1,[2]]", "array-trailing-comma": "[1,2,]",
    "array-quick": "[0.123456,1.234567,12.34567,123.4567,-0.000123,9.99e-5,1e+15,2E-7]",
}
for n, s in floats.items():
    write("float", n + ".txt", s)
specials = [0x00000000, 0x80000000, 0x00000001, 0x007fffff, 0x00800000, 0x7f7fffff,
            0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x3f800000, 0x3dcccccd,
            0x4b800001, 0x5f000000, 0x27000000, 0x322bcc77]
write("float", "bits-specials.bin", b"".join(struct.pack("<I", u) for u in specials))
write("float", "bits-powers.bin", b"".join(struct.pack("<f", 2.0 ** e) for e in range(-149, 128, 7)))

# ---- Model files (no models directory: inline weights or initializers) -

models_dir = os.path.join(HERE, "..", "data", "models")
for f in sorted(os.listdir(models_dir)):
    if f.endswith(".json"):
        with open(os.path.join(models_dir, f), "rb") as src:
            write("model", f, src.read())
with open(os.path.join(HERE, "..", "..", "config", "models", "gen3d.json"), "rb") as src:
    write("model", "gen3d.json", src.read())

keras3_dtype = {"module": "keras", "class_name": "DTypePolicy",
                "config": {"name": "float32"}, "registered_name": None}
models = {
    "conv2d-channels-first.json": {
        "class_name": "Conv2DTranspose",
        "config": {"name": "cf", "filters": 3, "kernel_size": 3, "strides": 1,
                   "padding": "same", "data_format": "channels_first",
                   "dilation_rate": [2, 1], "activation": "sigmoid",
                   "batch_input_shape": [None, 2, 5, 5],
                   "kernel_initializer": {"class_name": "Orthogonal", "config": {"gain": 1.0, "seed": 1}}}},
    "conv1d-output-padding.json": {
        "class_name": "Deconvolution1D",
        "config": {"filters": 2, "kernel_size": [4], "strides": [3], "padding": "same",
                   "output_padding": [2], "use_bias": False, "activation": "leaky_relu",
                   "input_shape": [7, 1],
                   "kernel_initializer": {"class_name": "VarianceScaling",
                                          "config": {"scale": 2.0, "mode": "fan_out",
                                                     "distribution": "truncated_normal", "seed": 3}}}},
    "conv2d-weights-list.json": {
        "class_name": "Conv2DTranspose",
        "config": {"filters": 1, "kernel_size": [1, 2], "padding": "valid", "dtype": "bfloat16",
                   "activation": {"class_name": "LeakyReLU", "config": {"negative_slope": 0.2}}},
        "weights": [[[[[1.0, -1.0]], [[0.5, 2.0]]]], [0.25]]},
    "conv3d-keras3-identity.json": {
        "module": "keras.layers", "class_name": "Conv3DTranspose", "registered_name": None,
        "config": {"name": "c3", "dtype": keras3_dtype, "filters": 2, "kernel_size": [1, 1, 1],
                   "strides": [1, 2, 1], "padding": "valid", "data_format": "channels_last",
                   "dilation_rate": [1, 1, 1], "activation": "relu6", "use_bias": True,
                   "kernel_initializer": {"module": "keras.initializers", "class_name": "Identity",
                                          "config": {"gain": 1.0}, "registered_name": None},
                   "bias_initializer": {"class_name": "Constant", "config": {"value": 0.5}},
                   "kernel_regularizer": None, "bias_regularizer": None,
                   "activity_regularizer": None, "kernel_constraint": None,
                   "bias_constraint": None, "extra_key": [1, 2]},
        "build_config": {"input_shape": [None, 2, 2, 2, 2]}},
    "r-style-weights.json": {
        "class_name": "layer_conv_2d_transpose",
        "config": {"filters": 1, "kernel_size": 1, "activation": "softmax",
                   "weights": [[[[[2.0]]]], [0.0]], "batch_size": 2,
                   "kernel_initializer": "he_normal", "bias_initializer": "random_uniform"}},
    "bad-class.json": {"class_name": "Conv2D", "config": {"filters": 1, "kernel_size": 3}},
    "bad-dilation.json": {"class_name": "Conv2DTranspose",
                          "config": {"filters": 1, "kernel_size": 3, "strides": 2,
                                     "dilation_rate": 2, "input_shape": [4, 4, 1]}},
    "npy-path.json": {"class_name": "Conv1DTranspose",
                      "config": {"filters": 1, "kernel_size": 3},
                      "weights": {"kernel": "k.npy", "bias": "b.npy"}},
}
for n, obj in models.items():
    write("model", n, json.dumps(obj, indent=1))

# one model per activation / initializer form, rotating through layer kinds
activations = ["linear", "relu", "sigmoid", "tanh", "softplus", "softsign", "elu", "selu",
               "exponential", "hard_sigmoid", "swish", "silu", "gelu", "relu6", "leaky_relu",
               "mish", "softmax", "hard_silu", "hard_swish", "log_sigmoid", None,
               {"class_name": "ReLU", "config": {"max_value": 3.0, "negative_slope": 0.1,
                                                 "threshold": 0.5}},
               {"class_name": "ELU", "config": {"alpha": 0.7}},
               {"class_name": "Softmax", "config": {"axis": [-1]}},
               {"module": "keras.activations", "class_name": "function", "config": "gelu",
                "registered_name": "function"},
               {"class_name": "Activation", "config": {"activation": "tanh"}}]
initializers = ["zeros", "ones", "glorot_normal", "lecun_uniform", "he_uniform", "orthogonal",
                "identity",
                {"class_name": "RandomNormal", "config": {"mean": 0.5, "stddev": 2.0, "seed": 7}},
                {"class_name": "RandomUniform", "config": {"minval": -3, "maxval": 3}},
                {"class_name": "TruncatedNormal", "config": {"mean": 0, "stddev": 0.1, "seed": 1}},
                {"class_name": "VarianceScaling", "config": {"scale": 1.5, "mode": "fan_avg",
                                                             "distribution": "uniform"}},
                {"class_name": "VarianceScaling", "config": {"mode": "fan_in",
                                                             "distribution": "untruncated_normal"}},
                {"class_name": "Constant", "config": {"value": -0.25}},
                {"class_name": "Orthogonal", "config": {"gain": 2.0, "seed": 11}},
                {"class_name": "LecunNormal", "config": {"seed": 3}}]
kinds = [("Conv1DTranspose", 1, [None, 5, 2]), ("Conv2DTranspose", 2, [None, 3, 4, 2]),
         ("Conv3DTranspose", 3, [None, 2, 3, 2, 2])]
for i in range(max(len(activations), len(initializers))):
    cls, rank, bis = kinds[i % 3]
    cfg = {"filters": 1 + i % 4, "kernel_size": [2] * rank, "strides": 1 + i % 2,
           "padding": ["valid", "same"][i % 2], "batch_input_shape": bis,
           "activation": activations[i % len(activations)],
           "kernel_initializer": initializers[i % len(initializers)],
           "bias_initializer": initializers[(i + 3) % len(initializers)]}
    write("model", "forms-%02d.json" % i, compact({"class_name": cls, "config": cfg}))

# ---- Model configs as chains (modelform): real and hand-made forms ------

forms_dir = os.path.join(HERE, "..", "data", "modelform")
for f in sorted(os.listdir(forms_dir)):
    if f.endswith(".json"):
        with open(os.path.join(forms_dir, f), "rb") as src:
            write("modelform", f, src.read())


def fn_layer(name, cls, inputs, k3, node=0):
    """A Functional entry reading `inputs` (names) in one call."""
    if cls == "InputLayer":
        return {"class_name": cls, "name": name, "inbound_nodes": [],
                "config": {"name": name, "batch_shape": [None, 4]}}
    if k3:
        ts = [{"class_name": "__keras_tensor__",
               "config": {"shape": [None, 4], "dtype": "float32", "keras_history": [i, node, 0]}}
              for i in inputs]
        nodes = [{"args": [ts[0] if len(ts) == 1 else ts], "kwargs": {}}]
    else:
        nodes = [[[i, node, 0, {}] for i in inputs]]
    return {"class_name": cls, "name": name, "config": {"name": name}, "inbound_nodes": nodes}


def functional(layers, ins, outs, k3):
    doc = {"class_name": "Functional",
           "config": {"name": "g", "layers": layers, "input_layers": ins, "output_layers": outs}}
    if k3:
        doc["module"] = "keras.src.models.functional"
    return doc


for k3 in (False, True):
    tag = "k3" if k3 else "k2"
    graphs = {
        "chain": ([("in", "InputLayer", []), ("a", "Dense", ["in"]), ("b", "ReLU", ["a"])],
                  ["in", 0, 0], ["b", 0, 0]),
        "add": ([("in", "InputLayer", []), ("a", "Dense", ["in"]), ("b", "Dense", ["in"]),
                 ("add", "Add", ["a", "b"])], ["in", 0, 0], ["add", 0, 0]),
        "split": ([("in", "InputLayer", []), ("a", "Dense", ["in"]), ("b", "Dense", ["a"]),
                   ("c", "Dense", ["a"])], ["in", 0, 0], [["b", 0, 0], ["c", 0, 0]]),
        "cycle": ([("in", "InputLayer", []), ("a", "Dense", ["in"]), ("b", "Dense", ["c"]),
                   ("c", "Dense", ["b"])], [["in", 0, 0]], [["a", 0, 0]]),
        "after-output": ([("in", "InputLayer", []), ("a", "Dense", ["in"]),
                          ("b", "Dense", ["a"])], ["in", 0, 0], ["a", 0, 0]),
    }
    for n, (spec, ins, outs) in graphs.items():
        layers = [fn_layer(name, cls, inputs, k3) for name, cls, inputs in spec]
        write("modelform", "%s-%s.json" % (tag, n), compact(functional(layers, ins, outs, k3)))
    shared = [fn_layer("in", "InputLayer", [], k3), fn_layer("a", "Dense", ["in"], k3)]
    shared[1]["inbound_nodes"] *= 2
    write("modelform", "%s-shared.json" % tag,
          compact(functional(shared, ["in", 0, 0], ["a", 1, 0], k3)))
    inner = {"class_name": "Sequential", "name": "blk",
             "config": {"name": "blk", "layers": [
                 {"class_name": "InputLayer", "config": {"name": "bi", "batch_shape": [None, 4]}},
                 {"class_name": "Dense", "config": {"name": "bd"}}]}}
    inner["inbound_nodes"] = fn_layer("blk", "Dense", ["in"], k3)["inbound_nodes"]
    nested = [fn_layer("in", "InputLayer", [], k3), inner, fn_layer("out", "Dense", ["blk"], k3)]
    write("modelform", "%s-nested.json" % tag,
          compact(functional(nested, ["in", 0, 0], ["out", 0, 0], k3)))

deep = {"class_name": "Dense", "config": {"name": "d", "batch_input_shape": [None, 3]}}
for i in range(17):
    deep = {"class_name": "Sequential", "config": {"name": "s%d" % i, "layers": [deep]}}
write("modelform", "deep.json", compact(deep))
write("modelform", "too-deep.json",
      compact({"class_name": "Sequential", "config": {"name": "top", "layers": [deep]}}))
write("modelform", "long-name.json",
      compact({"class_name": "Sequential", "config": {"name": "s", "layers": [
          {"class_name": "Dense", "config": {"name": "n" * 130}}]}}))
write("modelform", "bad-signature.json",
      compact({"class_name": "Sequential", "config": {"name": "s",
                                                     "build_input_shape": "(None, 2)",
                                                     "layers": [{"class_name": "Dense",
                                                                 "config": {"name": "d"}}]}}))
write("modelform", "input-not-input-layer.json",
      compact(functional([fn_layer("in", "InputLayer", [], False),
                          fn_layer("a", "Dense", ["in"], False)], ["a", 0, 0], ["a", 0, 0],
                         False)))
write("modelform", "get-config-alone.json",
      compact({"name": "s", "build_input_shape": [None, 2, 2],
               "layers": [{"class_name": "Flatten", "config": {"name": "f"}},
                          {"class_name": "Dense", "config": {"name": "d"}}]}))
write("modelform", "single-layer.json",
      compact({"class_name": "Conv2DTranspose", "config": {"filters": 1, "kernel_size": 1}}))

# ---- Shape inference: input shape line, then a layer --------------------

shape_seeds = [
    ("conv2d-same.txt", "1 8 8 3", {"class_name": "Conv2DTranspose",
                                     "config": {"filters": 4, "kernel_size": 3, "strides": 2,
                                                "padding": "same"}}),
    ("conv2d-valid-unknown.txt", "-1 -1 5 2", {"class_name": "Conv2DTranspose",
                                               "config": {"filters": 1, "kernel_size": [3, 2],
                                                          "strides": [1, 3], "padding": "valid",
                                                          "input_shape": [None, None, 2]}}),
    ("conv1d-output-padding.txt", "2 7 1", {"class_name": "Conv1DTranspose",
                                            "config": {"filters": 2, "kernel_size": 4,
                                                       "strides": 3, "padding": "same",
                                                       "output_padding": 2}}),
    ("conv3d-channels-first.txt", "1 3 4 4 4", {"class_name": "layer_conv_3d_transpose",
                                                 "config": {"filters": 2, "kernel_size": [2, 2, 2],
                                                            "strides": 2, "padding": "same",
                                                            "data_format": "channels_first",
                                                            "batch_input_shape": [None, 3, 4, 4, 4]}}),
    ("dilated.txt", "1 9 9 1", {"class_name": "Conv2DTranspose",
                                "config": {"filters": 1, "kernel_size": 5, "dilation_rate": [3, 2],
                                           "padding": "valid"}}),
    ("extent-limit.txt", "1 2147483648 1", {"class_name": "Conv1DTranspose",
                                            "config": {"filters": 1, "kernel_size": 4096,
                                                       "strides": 4096}}),
    ("wrong-rank.txt", "1 8 3", {"class_name": "Conv2DTranspose",
                                 "config": {"filters": 1, "kernel_size": 3}}),
    ("channel-mismatch.txt", "1 8 8 5", {"class_name": "Conv2DTranspose",
                                         "config": {"filters": 1, "kernel_size": 3,
                                                    "input_shape": [8, 8, 3]}}),
    ("bare-config.txt", "4 16 2", {"class_name": "Deconv1D", "filters": 8, "kernel_size": 1,
                                   "padding": "SAME"}),
]
for n, dims, layer in shape_seeds:
    write("shape", n, dims + "\n" + json.dumps(layer))
with open(os.path.join(models_dir, "keras3_conv2d_transpose.json")) as src:
    write("shape", "keras3.txt", "3 2 2 1\n" + src.read())

# ---- .npy images ---------------------------------------------------------

def npy(version, header, payload=b"", pad=True):
    """A .npy image with the header text padded like NumPy (to 64 bytes)."""
    magic = b"\x93NUMPY" + bytes([version, 0])
    width = 2 if version == 1 else 4
    h = header.encode("utf-8" if version == 3 else "latin1")
    if pad:
        total = len(magic) + width + len(h) + 1
        h += b" " * ((64 - total % 64) % 64) + b"\n"
    n = struct.pack("<H", len(h)) if width == 2 else struct.pack("<I", len(h))
    return magic + n + h + payload


def f4(*v):
    return struct.pack("<%df" % len(v), *v)


def f8(*v):
    return struct.pack("<%dd" % len(v), *v)


images = {
    "v1-f4-2x3.npy": npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                         f4(1, 2, 3, 4, 5, 6)),
    "v1-f8-fortran-3x2x2.npy": npy(1, "{'descr': '<f8', 'fortran_order': True, 'shape': (3, 2, 2), }",
                                   f8(*[i * 0.5 - 1 for i in range(12)])),
    "v1-f4-fortran-2x3.npy": npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                                 f4(1, 4, 2, 5, 3, 6)),
    "v2-f4-1d.npy": npy(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }",
                        f4(0.1, -0.2, 3e38, 1e-45, -0.0)),
    "v3-f4-utf8.npy": npy(3, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }    \u00e9",
                          f4(7.5)),
    "v1-0d.npy": npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", f8(2.5)),
    "v1-empty.npy": npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }"),
    "v1-f8-overflow.npy": npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }",
                              f8(1e300, -1e300, float("nan"), float("inf"))),
    "v1-8d.npy": npy(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2, 1, 2, 1, 2, 1, 1), }",
                     f4(*range(8))),
    "v1-python2-long.npy": npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 1L), }",
                               f4(1, 2)),
    "v1-double-quotes-unpadded.npy": npy(1, '{"shape": (2,), "fortran_order": False, "descr": "<f4"}',
                                         f4(3, 4), pad=False),
    "v1-big-endian.npy": npy(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }",
                             b"\x3f\x80\x00\x00"),
    "v1-int32.npy": npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }",
                        b"\x01\x00\x00\x00"),
    "v1-structured.npy": npy(1, "{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, "
                                "'shape': (1,), }", f4(1, 2)),
    "v1-truncated.npy": npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f4(1, 2)),
    "v1-trailing.npy": npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f4(1, 2)),
    "v1-huge-shape.npy": npy(1, "{'descr': '<f4', 'fortran_order': False, "
                                "'shape': (4294967296, 4294967296, 0), }"),
    "v4.npy": b"\x93NUMPY\x04\x00\x10\x00" + b"{}" + b" " * 14,
}
for n, data in images.items():
    write("npy", n, data)

# ---- Accept headers (PNG answers) ----------------------------------------

accepts = {
    "none.txt": "",
    "any.txt": "*/*",
    "png.txt": "image/png",
    "image-any.txt": "image/*;q=0.9, application/json;q=0.5",
    "browser.txt": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                   "image/webp,*/*;q=0.8",
    "browser-image.txt": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
    "q-forms.txt": "image/png;q=1.000, application/json;q=0.999, */*;q=0",
    "quoted.txt": ' image/png ; q=0.7 ; foo="a,b;q=0.1\\"x" , application/json ; Q=0.6',
    "params.txt": "application/json; charset=utf-8;;q=0.5,,image/png;level=1",
    "bad.txt": "image/png;q=2, */png, png, image/png;q=abc, image/png;foo=\"open",
    "neither.txt": "text/html, image/webp",
}
for n, text in accepts.items():
    write("accept", n, text)

# model files with an "image" key (PNG answers' range)
for n, image in {"image-range.json": {"range": [-1, 1]},
                 "image-bad.json": {"range": [1, -1], "extra": True}}.items():
    write("model", n, json.dumps({"class_name": "Conv2DTranspose",
                                  "config": {"filters": 3, "kernel_size": 2, "strides": 2,
                                             "activation": "relu",
                                             "batch_input_shape": [None, 2, 2, 1]},
                                  "image": image}, indent=1))

# ---- chain models (Sequential / Functional documents) for the model harness:
# every layer class of the registry, weights from initializers or inline.

def layer(cls, name, **cfg):
    return {"class_name": cls, "config": dict(cfg, name=name)}


def seq(name, batch_shape, layers, weights=None):
    doc = {"class_name": "Sequential", "config": {"name": name, "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": batch_shape, "name": "in"}}
    ] + layers}}
    if weights is not None:
        doc["weights"] = weights
    return json.dumps(doc)


CHAINS = {
    "chain-decoder.json": seq("dec", [None, 4], [
        layer("Dense", "d", units=12, activation="relu"),
        layer("Reshape", "r", target_shape=[2, 2, 3]),
        layer("Conv2DTranspose", "ct", filters=2, kernel_size=3, strides=2, padding="same"),
        layer("BatchNormalization", "bn", axis=-1, epsilon=0.001),
        layer("LeakyReLU", "lr", negative_slope=0.2),
        layer("UpSampling2D", "up", size=[2, 2], interpolation="bilinear"),
        layer("Cropping2D", "cr", cropping=[[1, 0], [0, 1]]),
        layer("ZeroPadding2D", "zp", padding=1),
        layer("Conv2D", "c", filters=3, kernel_size=2, activation="tanh"),
        layer("Softmax", "sm", axis=-1)]),
    "chain-1d.json": seq("a", [None, 8, 2], [
        layer("Conv1D", "c", filters=3, kernel_size=3, padding="causal", dilation_rate=2),
        layer("PReLU", "p", shared_axes=[1]),
        layer("UpSampling1D", "u", size=2),
        layer("Conv1DTranspose", "t", filters=1, kernel_size=4, strides=2),
        layer("Dropout", "dr", rate=0.5), layer("Flatten", "f"),
        layer("Activation", "a", activation="hard_sigmoid")]),
    "chain-3d.json": seq("v", [None, 2, 2, 2, 1], [
        layer("ZeroPadding3D", "z", padding=1),
        layer("Conv3DTranspose", "t", filters=2, kernel_size=2, strides=2),
        layer("SpatialDropout3D", "s", rate=0.1),
        layer("Cropping3D", "c", cropping=1), layer("UpSampling3D", "u", size=2),
        layer("ELU", "e", alpha=0.5), layer("ReLU", "r", max_value=6.0, threshold=0.1)]),
    "chain-inline.json": seq("w", [None, 2], [layer("Dense", "d", units=2)],
                             {"d": {"kernel": [[1, 2], [3, 4]], "bias": [0.5, -0.5]}}),
    "chain-functional.json": json.dumps({"class_name": "Functional", "config": {
        "name": "f", "input_layers": [["i", 0, 0]], "output_layers": [["d2", 0, 0]],
        "layers": [
            {"class_name": "InputLayer", "name": "i", "config": {
                "batch_input_shape": [None, 3], "name": "i"}, "inbound_nodes": []},
            {"class_name": "Dense", "name": "d1", "config": {"name": "d1", "units": 4},
             "inbound_nodes": [[["i", 0, 0, {}]]]},
            {"class_name": "Dense", "name": "d2", "config": {"name": "d2", "units": 2},
             "inbound_nodes": [[["d1", 0, 0, {}]]]}]}}),
}
for n, text in CHAINS.items():
    write("model", n, text)


print("seeds written under", CORPUS)


# ---- Keras files (kzip, kfile): the fixtures as Keras wrote them, deflated
# copies, and broken zips (tests/data/keras/read/make_files.py writes the
# hostile HDF5 files; it needs h5py, this script only the standard library).

import io
import zipfile

keras_dir = os.path.join(HERE, "..", "data", "keras", "read", "layers")
for case in sorted(os.listdir(keras_dir)):
    for ext in ("keras", "h5"):
        raw = open(os.path.join(keras_dir, case, "model." + ext), "rb").read()
        write("kfile", "%s.%s" % (case, ext), raw)
        if ext != "keras":
            continue
        write("kzip", "%s.keras" % case, raw)
        buf = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(raw)) as src, \
                zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
            for n in src.namelist():
                dst.writestr(n, src.read(n))
        write("kzip", "%s-deflated.keras" % case, buf.getvalue())
        write("kfile", "%s-deflated.keras" % case, buf.getvalue())
        write("kzip", "%s-truncated.keras" % case, raw[:len(raw) // 2])


def small_zip(members, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for n, v in members:
            z.writestr(n, v)
    return buf.getvalue()


write("kzip", "many.zip", small_zip([("m%d" % i, "x") for i in range(20)]))
write("kzip", "bzip2.zip", small_zip([("config.json", "{}" * 50)], zipfile.ZIP_BZIP2))
write("kzip", "big-member.zip", small_zip([("config.json", b" " * (70 << 10))],
                                          zipfile.ZIP_DEFLATED))
write("kzip", "empty.zip", small_zip([]))


# ---- the hostile catalogue (tests/robustness/make_hostile_keras.py): its
# small regular files as kzip (.keras) and kfile (.keras, .h5) seeds. It
# needs h5py, so it runs as its own process and is skipped without it. Left
# out: the files on which libhdf5 itself reads out of bounds (crashes_hdf5:
# in-process harnesses would stop at once; the isolated child handles them,
# tests/robustness/test_kerasfiles.py) and files over 256 KiB.

import subprocess
import tempfile


def hostile_seeds():
    gen = os.path.join(HERE, "..", "robustness", "make_hostile_keras.py")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cat")
        r = subprocess.run(["/usr/bin/python3", gen, out, "--small", "--no-special"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if r.returncode != 0:
            print("hostile Keras seeds skipped:", r.stderr.decode(errors="replace")[-300:])
            return
        with open(os.path.join(out, "catalogue.json")) as f:
            cat = json.load(f)
        n = 0
        for c in cat:
            p = os.path.join(out, c["file"])
            if c["crashes_hdf5"] or not os.path.isfile(p) or os.path.getsize(p) > 256 << 10:
                continue
            with open(p, "rb") as f:
                data = f.read()
            if c["file"].endswith(".keras"):
                write("kzip", "hostile-" + c["file"], data)
            if c["file"].endswith((".keras", ".h5")):
                write("kfile", "hostile-" + c["file"], data)
                n += 1
        print("hostile Keras seeds:", n)


hostile_seeds()
