#!/usr/bin/python3
"""The bench's chain models (issue 12): Keras decoders as Sequential configs.

  dcgan_gen    the TensorFlow DCGAN tutorial's generator: Input(100) ->
               Dense(7*7*256, no bias) -> BatchNormalization -> LeakyReLU ->
               Reshape((7, 7, 256)) -> Conv2DTranspose(128, 5, s1, same, no
               bias) -> BN -> LeakyReLU -> Conv2DTranspose(64, 5, s2) -> BN ->
               LeakyReLU -> Conv2DTranspose(1, 5, s2, tanh)     1x100 -> 1x28x28x1
  vae_decoder  the Keras VAE example's decoder: Input(2) -> Dense(7*7*64,
               relu) -> Reshape((7, 7, 64)) -> Conv2DTranspose(64, 3, s2, relu)
               -> Conv2DTranspose(32, 3, s2, relu) -> Conv2DTranspose(1, 3,
               sigmoid), all "same"                              1x2 -> 1x28x28x1

`chain_models.py configs` (re)writes bench/models/<name>.json: exactly what
Keras 3.15 `model.to_json()` writes (module / registered_name / DTypePolicy
dicts, build_config), kernels from seeded initializers, BatchNormalization
with its default statistics (gamma 1, beta 0, mean 0, variance 1) — the
form a user's export has before the weights are added; deconvd's chain
loader wants the kernels in "weights", so serve the files `weights` writes. With
`--check FIXTURE.json` it first compares vae_decoder, seeds set back to null,
with the file Keras 3.15.1 wrote (../shared/keras-fixtures/models/
vae_decoder/model.json): the builders below must reproduce Keras's form.

`chain_models.py weights DIR` writes, for each chain model, every weight as a
.npy file (DIR/<name>.<layer>.<variable>.npy, fixed seeds, so the same bytes
on every run: BatchNormalization with non-trivial statistics, biases non-zero)
and DIR/<name>.json: the config plus "weights" naming those files. The bench
serves those models (run.py), and the Flask + PyTorch peer (peer/app.py
--model DIR/<name>.json) reads the same files, so both compute with the same
weights and deconvd's initializers play no part.
"""
import copy
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "models")
NAMES = ("dcgan_gen", "vae_decoder")


def ser(module, class_name, config):
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


def policy():
    return ser("keras", "DTypePolicy", {"name": "float32"})


def init(class_name, **config):
    return ser("keras.initializers", class_name, config)


def glorot(seed):
    return init("GlorotUniform", seed=seed, input_axes=None, output_axes=None)


def base(name):
    return {"name": name, "trainable": True, "dtype": policy()}


def layer(class_name, config, build_shape=None):
    d = ser("keras.layers", class_name, config)
    if build_shape is not None:          # layers with a build() carry their input shape
        d["build_config"] = {"input_shape": build_shape}
    return d


def dense(name, units, use_bias, activation, seed, build_shape):
    return layer("Dense", dict(base(name), units=units, activation=activation, use_bias=use_bias,
                               kernel_initializer=glorot(seed), bias_initializer=init("Zeros"),
                               kernel_regularizer=None, bias_regularizer=None,
                               kernel_constraint=None, bias_constraint=None,
                               quantization_config=None), build_shape)


def batchnorm(name, build_shape):
    return layer("BatchNormalization", dict(
        base(name), axis=-1, momentum=0.99, epsilon=0.001, center=True, scale=True,
        beta_initializer=init("Zeros"), gamma_initializer=init("Ones"),
        moving_mean_initializer=init("Zeros"), moving_variance_initializer=init("Ones"),
        beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
        gamma_constraint=None, synchronized=False, renorm=False, renorm_clipping=None,
        renorm_momentum=0.99), build_shape)


def leaky(name):
    return layer("LeakyReLU", dict(base(name), negative_slope=0.3))


def conv_t(name, filters, k, s, use_bias, activation, seed, build_shape):
    return layer("Conv2DTranspose", dict(
        base(name), filters=filters, kernel_size=[k, k], strides=[s, s], padding="same",
        output_padding=None, data_format="channels_last", dilation_rate=[1, 1],
        activation=activation, use_bias=use_bias, kernel_initializer=glorot(seed),
        bias_initializer=init("Zeros"), kernel_regularizer=None, bias_regularizer=None,
        activity_regularizer=None, kernel_constraint=None, bias_constraint=None), build_shape)


def sequential(name, in_shape, layers):
    inp = ser("keras.layers", "InputLayer", {"batch_shape": [None] + in_shape, "dtype": "float32",
                                             "sparse": False, "ragged": False,
                                             "name": "input_layer", "optional": False})
    return {"module": "keras", "class_name": "Sequential",
            "config": {"name": name, "trainable": True, "dtype": policy(), "layers": [inp] + layers,
                       "build_input_shape": [None] + in_shape},
            "registered_name": None, "build_config": {"input_shape": [None] + in_shape},
            "compile_config": {}}


def dcgan_gen():
    N = None
    return sequential("dcgan_gen", [100], [
        dense("dense", 7 * 7 * 256, False, "linear", 11, [N, 100]),
        batchnorm("batch_normalization", [N, 12544]),
        leaky("leaky_re_lu"),
        layer("Reshape", dict(base("reshape"), target_shape=[7, 7, 256])),
        conv_t("conv2d_transpose", 128, 5, 1, False, "linear", 12, [N, 7, 7, 256]),
        batchnorm("batch_normalization_1", [N, 7, 7, 128]),
        leaky("leaky_re_lu_1"),
        conv_t("conv2d_transpose_1", 64, 5, 2, False, "linear", 13, [N, 7, 7, 128]),
        batchnorm("batch_normalization_2", [N, 14, 14, 64]),
        leaky("leaky_re_lu_2"),
        conv_t("conv2d_transpose_2", 1, 5, 2, False, "tanh", 14, [N, 14, 14, 64]),
    ])


def vae_decoder():
    N = None
    return sequential("decoder", [2], [
        dense("dense", 7 * 7 * 64, True, "relu", 21, [N, 2]),
        layer("Reshape", dict(base("reshape"), target_shape=[7, 7, 64])),
        conv_t("conv2d_transpose", 64, 3, 2, True, "relu", 22, [N, 7, 7, 64]),
        conv_t("conv2d_transpose_1", 32, 3, 2, True, "relu", 23, [N, 14, 14, 64]),
        conv_t("conv2d_transpose_2", 1, 3, 1, True, "sigmoid", 24, [N, 28, 28, 32]),
    ])


def unseeded(doc):
    """doc with every initializer seed back to null (as Keras wrote the fixture)."""
    doc = copy.deepcopy(doc)
    for l in doc["config"]["layers"]:
        for v in l["config"].values():
            if isinstance(v, dict) and v.get("module") == "keras.initializers" and "seed" in v["config"]:
                v["config"]["seed"] = None
    return doc


# ---------------------------------------------------------------- weights

def wanted(l, in_shape):
    """[(variable, shape)] in Keras `layer.weights` order, and the output shape."""
    c, cls = l["config"], l["class_name"]
    if cls == "Dense":
        w = [("kernel", (in_shape[-1], c["units"]))] + ([("bias", (c["units"],))] if c["use_bias"] else [])
        return w, in_shape[:-1] + [c["units"]]
    if cls == "Conv2DTranspose":
        k, s, f = c["kernel_size"], c["strides"], c["filters"]
        w = [("kernel", (k[0], k[1], f, in_shape[-1]))] + ([("bias", (f,))] if c["use_bias"] else [])
        return w, [in_shape[0], in_shape[1] * s[0], in_shape[2] * s[1], f]   # "same"
    if cls == "BatchNormalization":
        ch = (in_shape[-1],)
        return [("gamma", ch), ("beta", ch), ("moving_mean", ch), ("moving_variance", ch)], in_shape
    if cls == "Reshape":
        return [], [in_shape[0]] + list(c["target_shape"])
    return [], in_shape


def fill(rng, var, shape):
    if var == "kernel":                  # Glorot uniform over (fan_in, fan_out)
        rf = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan = rf * (shape[-2] + shape[-1])
        lim = np.sqrt(6.0 / fan)
        return rng.uniform(-lim, lim, shape)
    lo, hi = {"bias": (-0.05, 0.05), "gamma": (0.8, 1.2), "beta": (-0.1, 0.1),
              "moving_mean": (-0.1, 0.1), "moving_variance": (0.5, 1.5)}[var]
    return rng.uniform(lo, hi, shape)


def write_weights(name, outdir):
    with open(os.path.join(MODELS, name + ".json")) as f:
        doc = json.load(f)
    doc = copy.deepcopy(doc)
    shape = list(doc["config"]["layers"][0]["config"]["batch_shape"])
    weights = {}
    for i, l in enumerate(doc["config"]["layers"][1:]):
        ws, shape = wanted(l, shape)
        if not ws:
            continue
        rng = np.random.default_rng(1000 * (NAMES.index(name) + 1) + i)
        lname = l["config"]["name"]
        weights[lname] = {}
        for var, shp in ws:
            fn = f"{name}.{lname}.{var}.npy"
            np.save(os.path.join(outdir, fn), fill(rng, var, shp).astype("<f4"))
            weights[lname][var] = fn
    doc["weights"] = weights
    with open(os.path.join(outdir, name + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
    return doc


def main():
    args = sys.argv[1:]
    if args[:1] == ["configs"]:
        if args[1:2] == ["--check"] and len(args) == 3:
            with open(args[2]) as f:
                keras = json.load(f)
            if unseeded(vae_decoder()) != keras:
                sys.stderr.write("chain_models.py: vae_decoder differs from Keras's file\n")
                return 1
        elif len(args) != 1:
            return usage()
        for name, doc in (("dcgan_gen", dcgan_gen()), ("vae_decoder", vae_decoder())):
            with open(os.path.join(MODELS, name + ".json"), "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
        return 0
    if len(args) == 2 and args[0] == "weights":
        os.makedirs(args[1], exist_ok=True)
        for name in NAMES:
            write_weights(name, args[1])
        return 0
    return usage()


def usage():
    sys.stderr.write("usage: chain_models.py configs [--check KERAS_MODEL.json] | weights DIR\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
