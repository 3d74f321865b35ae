#!/usr/bin/python3
"""Writes the hand-made model configs of tests/data/modelform/ from the real
Keras 3.15.1 VAE decoder (keras3_vae_decoder.to_json.json, copied from
shared/keras-fixtures): the same chain in the other forms Keras writes, each
following the Keras source that writes it (no Keras here to run):

- keras3_vae_decoder.functional.json: Keras 3 keras/src/models/functional.py
  get_config (layers + "name" + "inbound_nodes" of {"args": [__keras_tensor__],
  "kwargs": {}}, input_layers/output_layers as one [name, node, tensor]) inside
  serialization_lib.serialize_keras_object's {"module", "class_name",
  "config", "registered_name", "build_config"}.
- keras2_*: tf-keras engine/training.py _updated_config ({"class_name",
  "config", "keras_version", "backend"}), engine/sequential.py get_config,
  engine/functional.py get_network_config (inbound_nodes [[[name, 0, 0, {}]]],
  input_layers [[name, 0, 0]]), base_layer get_config (dtype a string,
  batch_input_shape on a first layer without InputLayer). tf.keras >= 2.13
  writes "module"/"registered_name" on layers too (serialization_lib), so the
  2.15 Sequential carries them.
Run: /usr/bin/python3 tests/data/modelform/make_forms.py (from anywhere).
"""
import copy
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
K3 = json.load(open(os.path.join(HERE, "keras3_vae_decoder.to_json.json")))
SHAPES = {"input_layer": [None, 2], "dense": [None, 3136], "reshape": [None, 7, 7, 64],
          "conv2d_transpose": [None, 14, 14, 64], "conv2d_transpose_1": [None, 28, 28, 32],
          "conv2d_transpose_2": [None, 28, 28, 1]}


def name_of(entry):
    return entry["config"]["name"]


def keras3_functional():
    layers, prev = [], None
    for e in K3["config"]["layers"]:
        e = copy.deepcopy(e)
        e["name"] = name_of(e)
        e["inbound_nodes"] = [] if prev is None else [{
            "args": [{"class_name": "__keras_tensor__",
                      "config": {"shape": SHAPES[prev], "dtype": "float32",
                                 "keras_history": [prev, 0, 0]}}],
            "kwargs": {}}]
        layers.append(e)
        prev = e["name"]
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "config": {"name": "decoder", "trainable": True, "layers": layers,
                       "input_layers": ["input_layer", 0, 0],
                       "output_layers": ["conv2d_transpose_2", 0, 0]},
            "registered_name": "Functional", "build_config": {"input_shape": None},
            "compile_config": None}


def legacy_value(v):
    """A Keras 3 serialized value as tf.keras 2's legacy serialization writes it."""
    if isinstance(v, dict):
        if v.get("class_name") == "DTypePolicy":
            return v["config"]["name"]
        return {k: legacy_value(x) for k, x in v.items()
                if k not in ("module", "registered_name", "build_config", "shared_object_id")}
    if isinstance(v, list):
        return [legacy_value(x) for x in v]
    return v


def keras2_layers(modules, with_input=True):
    out = []
    for e in K3["config"]["layers"]:
        if e["class_name"] == "InputLayer":
            if not with_input:
                continue
            cfg = {"batch_input_shape": [None, 2], "dtype": "float32", "sparse": False,
                   "ragged": False, "name": "input_1"}
            out.append({"class_name": "InputLayer", "config": cfg})
        else:
            cfg = legacy_value(e["config"])
            cfg.pop("quantization_config", None)
            out.append({"class_name": e["class_name"], "config": cfg})
        if modules:
            out[-1] = {"module": "keras.layers", "class_name": out[-1]["class_name"],
                       "config": out[-1]["config"], "registered_name": None}
    if not with_input:
        out[0]["config"]["batch_input_shape"] = [None, 2]
    return out


def keras2_functional(class_name, version):
    layers, prev = [], None
    for e in keras2_layers(False):
        e["name"] = name_of(e)
        e["inbound_nodes"] = [] if prev is None else [[[prev, 0, 0, {}]]]
        layers.append(e)
        prev = e["name"]
    return {"class_name": class_name,
            "config": {"name": "decoder", "layers": layers, "input_layers": [["input_1", 0, 0]],
                       "output_layers": [["conv2d_transpose_2", 0, 0]]},
            "keras_version": version, "backend": "tensorflow"}


def keras2_all():
    seq = {"class_name": "Sequential",
           "config": {"name": "decoder", "layers": keras2_layers(True)},
           "keras_version": "2.15.0", "backend": "tensorflow"}
    no_input = {"class_name": "Sequential",
                "config": {"name": "decoder", "layers": keras2_layers(False, False)},
                "keras_version": "2.4.0", "backend": "tensorflow"}
    as_list = {"class_name": "Sequential", "config": keras2_layers(False, False),
               "keras_version": "2.2.4", "backend": "tensorflow"}
    return {"keras2_vae_decoder.sequential.json": seq,
            "keras2_vae_decoder.sequential_no_input.json": no_input,
            "keras2_vae_decoder.sequential_list.json": as_list,
            "keras2_vae_decoder.functional.json": keras2_functional("Functional", "2.15.0"),
            "keras2_vae_decoder.model.json": keras2_functional("Model", "2.3.1")}


def main():
    files = {"keras3_vae_decoder.functional.json": keras3_functional()}
    files.update(keras2_all())
    for name, doc in files.items():
        with open(os.path.join(HERE, name), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
