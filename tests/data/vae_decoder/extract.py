#!/usr/bin/python3
"""extract.py — the VAE decoder fixture as a deconvd model file.

Reads Keras 3.15's own files for the decoder of the Keras VAE example
(copied here from the shared keras-fixtures: model.json is model.to_json(),
model.h5 the legacy HDF5 save) and writes
  ../models/vae_decoder/<layer>.<weight>.npy   every weight, float32, as Keras holds it
  ../models/vae_decoder.json                    {model.to_json()..., "weights": {...}}
so that the unit and black-box tests load the decoder the way a user would.
Needs h5py (python3-h5py). Usage: extract.py [path/to/model.h5]
"""
import json
import os
import sys

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(HERE, "..", "models")


def main():
    h5 = sys.argv[1] if len(sys.argv) > 1 else \
        "/work/shared/keras-fixtures/models/vae_decoder/model.h5"
    model = json.load(open(os.path.join(HERE, "model.json")))
    out_dir = os.path.join(MODELS, "vae_decoder")
    os.makedirs(out_dir, exist_ok=True)
    weights = {}
    with h5py.File(h5, "r") as f:
        mw = f["model_weights"]
        for layer in mw.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else str(layer)
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in mw[layer].attrs["weight_names"]]
            for full in names:
                short = full.split("/")[-1].split(":")[0]
                rel = "vae_decoder/%s.%s.npy" % (layer, short)
                np.save(os.path.join(MODELS, rel),
                        np.asarray(mw[layer][full], dtype=np.float32))
                weights.setdefault(layer, {})[short] = rel
    model["weights"] = weights
    with open(os.path.join(MODELS, "vae_decoder.json"), "w") as f:
        json.dump(model, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
