#!/usr/bin/python3
"""Regenerates the example models in config/models/ (deterministic).

The weights are small closed-form arrays so that the README's curl outputs
and scripts/smoke.sh can be checked by hand: see docs/examples.md.
"""
import json
import os

import numpy as np

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "config", "models")
os.makedirs(here, exist_ok=True)


def save(name, arr):
    np.save(os.path.join(here, name), np.asarray(arr, dtype="<f4"))


# up1d: Conv1DTranspose, 2 -> 1 channels, kernel 3, stride 2, same, linear.
k1 = np.array([[[1.0, 0.5]], [[2.0, -1.0]], [[0.25, 0.0]]], dtype=np.float32)  # (3, 1, 2)
save("up1d.kernel.npy", k1)
save("up1d.bias.npy", np.array([0.5], dtype=np.float32))
json.dump({
    "class_name": "Conv1DTranspose",
    "config": {"name": "up1d", "filters": 1, "kernel_size": [3], "strides": [2],
               "padding": "same", "output_padding": None, "data_format": "channels_last",
               "dilation_rate": [1], "activation": "linear", "use_bias": True,
               "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
               "kernel_regularizer": None, "bias_regularizer": None,
               "activity_regularizer": None, "kernel_constraint": None,
               "bias_constraint": None, "trainable": True, "dtype": "float32"},
    "weights": {"kernel": "up1d.kernel.npy", "bias": "up1d.bias.npy"},
}, open(os.path.join(here, "up1d.json"), "w"), indent=2)

# up2d: Conv2DTranspose, 3 -> 2 channels, kernel 3x3, stride 2, same, relu (Keras 3 form).
k2 = (np.arange(3 * 3 * 2 * 3, dtype=np.float32).reshape(3, 3, 2, 3) % 7 - 3) / 4
save("up2d.kernel.npy", k2)
save("up2d.bias.npy", np.array([0.1, -0.2], dtype=np.float32))
json.dump({
    "class_name": "Conv2DTranspose",
    "config": {"name": "up2d", "trainable": True,
               "dtype": {"module": "keras", "class_name": "DTypePolicy",
                         "config": {"name": "float32"}, "registered_name": None},
               "filters": 2, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same",
               "data_format": "channels_last", "output_padding": None,
               "dilation_rate": [1, 1], "activation": "relu", "use_bias": True,
               "kernel_initializer": {"module": "keras.initializers",
                                      "class_name": "GlorotUniform",
                                      "config": {"seed": None}, "registered_name": None},
               "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                                    "config": {}, "registered_name": None},
               "kernel_regularizer": None, "bias_regularizer": None,
               "activity_regularizer": None, "kernel_constraint": None,
               "bias_constraint": None},
    "weights": {"kernel": "up2d.kernel.npy", "bias": "up2d.bias.npy"},
}, open(os.path.join(here, "up2d.json"), "w"), indent=2)

# gen3d: Conv3DTranspose from initializers only (R-keras style input_shape).
json.dump({
    "class_name": "Conv3DTranspose",
    "config": {"name": "gen3d", "filters": 4, "kernel_size": 3, "strides": 2,
               "padding": "valid", "activation": "tanh", "use_bias": True,
               "kernel_initializer": {"class_name": "HeNormal", "config": {"seed": 42}},
               "bias_initializer": {"class_name": "Constant", "config": {"value": 0.01}},
               "input_shape": [None, None, None, 8]},
}, open(os.path.join(here, "gen3d.json"), "w"), indent=2)
