#!/usr/bin/python3
"""make_files.py — Keras files the fixtures do not cover, for tests/unit/test_kfile.c.

Writes into OUTDIR (argument), from the Keras 3.15.1 fixtures beside this script:
  k2_decoder.h5 / k2_decoder.weights.h5   the VAE decoder as tf.keras 2.x writes a legacy
      model / save_weights file (hdf5_format.py): fixed-length bytes attributes,
      model_weights@layer_names, groups in sorted order, weight_names "dense/kernel:0"
  k2_chunked.weights.h5   the same with layer_names / weight_names split into the
      name0, name1... chunks tf.keras 2 writes for attributes over 64 KiB
  k3_decoder.weights.h5   Keras 3's save_weights file (model.weights.h5 of the .keras)
  deflated.keras          the decoder's .keras re-zipped with ZIP_DEFLATED
  vae.keras / vae.h5 / k2_vae.h5   an outer Sequential "vae" = [Dense "enc_dense", the
      decoder nested whole]: Keras 3 names its groups layers/dense and
      layers/sequential/layers/dense... (saving_lib: class and position)
  f64be.weights.h5 / gzip.weights.h5   conv2dt_same_s2_k3's weights as big-endian float64,
      and chunked + gzip: both readable
  hostile files (h_*, z_*): truncated, lying or over-bound zips, other compression
      methods, a corrupt CRC, integer/float16/rank-6 datasets, shapes larger than the
      file, soft/external links, external storage, lzf filter, a hard-link cycle, giant /
      non-UTF-8 / non-JSON model_config: each must be a clean refusal.
Keras's own values come from the fixtures; nothing here imports deconvd.
"""
import io
import json
import os
import shutil
import struct
import sys
import zipfile

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VAE = os.path.join(HERE, "vae_decoder")
L1 = os.path.join(HERE, "layers", "conv2dt_same_s2_k3")
DECODER = ["dense", "reshape", "conv2d_transpose", "conv2d_transpose_1", "conv2d_transpose_2"]


def vae_weights():
    """{layer: [(name, array)]} from the decoder's Keras 3 legacy .h5."""
    out = {}
    with h5py.File(os.path.join(VAE, "model.h5"), "r") as f:
        mw = f["model_weights"]
        for layer in DECODER:
            out[layer] = [(n.split("/")[-1], np.asarray(mw[layer][n]))
                          for n in mw[layer].attrs["weight_names"]]
    return out


def k2_config(node):
    """A Keras 3 config as tf.keras 2 spells it: no module/registered_name,
    dtype strings, InputLayer batch_input_shape."""
    if isinstance(node, list):
        return [k2_config(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("module", "registered_name", "build_config", "compile_config"):
            continue
        if k == "dtype" and isinstance(v, dict):
            v = v["config"]["name"]
        if k == "batch_shape":
            k = "batch_input_shape"
        out[k] = k2_config(v)
    return out


def save_attr(g, name, items, chunks=1):
    """tf.keras 2's save_attributes_to_hdf5_group: a bytes array, or chunks."""
    data = np.asarray(items)
    if chunks == 1:
        g.attrs[name] = data
        return
    for i, part in enumerate(np.array_split(data, chunks)):
        g.attrs["%s%d" % (name, i)] = part


def k2_weights(g, layers, prefix_of, chunks=1):
    """tf.keras 2's save_weights_to_hdf5_group into g."""
    save_attr(g, "layer_names", [n.encode() for n in layers], chunks)
    g.attrs["backend"] = b"tensorflow"
    g.attrs["keras_version"] = b"2.15.0"
    for layer in sorted(layers):
        sub = g.create_group(layer)
        ws = layers[layer]
        names = [("%s%s:0" % (prefix_of(layer, n), n)).encode() for n, _ in ws]
        save_attr(sub, "weight_names", names if names else np.zeros((0,)),
                  chunks if len(names) > 1 else 1)
        for nm, (_, val) in zip(names, ws):
            sub.create_dataset(nm.decode(), data=val)


def decoder_config():
    return json.load(open(os.path.join(VAE, "model.json")))


def write_k2(out):
    w = vae_weights()
    cfg = k2_config(decoder_config())
    own = lambda layer, n: "%s/" % layer
    with h5py.File(os.path.join(out, "k2_decoder.h5"), "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(cfg).encode("utf8")
        k2_weights(f.create_group("model_weights"), w, own)
    with h5py.File(os.path.join(out, "k2_decoder.weights.h5"), "w") as f:
        k2_weights(f, w, own)
    with h5py.File(os.path.join(out, "k2_chunked.weights.h5"), "w") as f:
        k2_weights(f, w, own, chunks=2)
    json.dump(cfg, open(os.path.join(out, "k2_decoder.json"), "w"))


def write_k3(out):
    with zipfile.ZipFile(os.path.join(VAE, "model.keras")) as z:
        open(os.path.join(out, "k3_decoder.weights.h5"), "wb").write(z.read("model.weights.h5"))
        with zipfile.ZipFile(os.path.join(out, "deflated.keras"), "w",
                             zipfile.ZIP_DEFLATED) as d:
            for n in z.namelist():
                d.writestr(n, z.read(n))


def vae_config(k2=False):
    dec = decoder_config()
    enc = {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
           "config": {"name": "enc_dense", "trainable": True, "units": 2,
                      "activation": "linear", "use_bias": True,
                      "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                "config": {"name": "float32"}, "registered_name": None}},
           "build_config": {"input_shape": [None, 4]}}
    inp = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
           "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "vae_input"}}
    vae = {"module": "keras", "class_name": "Sequential", "registered_name": None,
           "config": {"name": "vae", "trainable": True, "layers": [inp, enc, dec]}}
    return k2_config(vae) if k2 else vae


def enc_weights():
    rng = np.random.default_rng(13)
    return [("kernel", rng.standard_normal((4, 2)).astype(np.float32)),
            ("bias", rng.standard_normal((2,)).astype(np.float32))]


def write_vae(out):
    w = vae_weights()
    enc = enc_weights()
    np.save(os.path.join(out, "enc_dense.kernel.npy"), enc[0][1])
    np.save(os.path.join(out, "enc_dense.bias.npy"), enc[1][1])
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for i, (_, v) in enumerate(enc):
            f.create_dataset("layers/dense/vars/%d" % i, data=v)
        groups = {"dense": "dense", "reshape": "reshape", "conv2d_transpose": "conv2d_transpose",
                  "conv2d_transpose_1": "conv2d_transpose_1",
                  "conv2d_transpose_2": "conv2d_transpose_2"}
        for layer in DECODER:
            g = f.create_group("layers/sequential/layers/%s/vars" % groups[layer])
            for i, (_, v) in enumerate(w[layer]):
                g.create_dataset(str(i), data=v)
        f.create_group("vars")
    with zipfile.ZipFile(os.path.join(out, "vae.keras"), "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", json.dumps(vae_config()))
        z.writestr("model.weights.h5", buf.getvalue())
    # Keras 3's legacy .h5: weight names are variable paths.
    with h5py.File(os.path.join(out, "vae.h5"), "w") as f:
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["backend"] = "torch"
        f.attrs["model_config"] = json.dumps(vae_config())
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = ["enc_dense", "decoder"]
        g = mw.create_group("enc_dense")
        g.attrs["weight_names"] = ["vae/enc_dense/kernel", "vae/enc_dense/bias"]
        for n, v in enc:
            g.create_dataset("vae/enc_dense/" + n, data=v)
        g = mw.create_group("decoder")
        names = ["vae/decoder/%s/%s" % (layer, n) for layer in DECODER for n, _ in w[layer]]
        g.attrs["weight_names"] = names
        for layer in DECODER:
            for n, v in w[layer]:
                g.create_dataset("vae/decoder/%s/%s" % (layer, n), data=v)
    # tf.keras 2: the nested model's group lists "<layer>/<var>:0".
    with h5py.File(os.path.join(out, "k2_vae.h5"), "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(vae_config(k2=True)).encode()
        layers = {"enc_dense": enc, "decoder": [(n, v) for layer in DECODER for n, v in w[layer]]}
        owners = {"enc_dense": ["enc_dense"] * 2,
                  "decoder": [layer for layer in DECODER for _ in w[layer]]}
        mw = f.create_group("model_weights")
        save_attr(mw, "layer_names", [b"enc_dense", b"decoder"])
        for layer, ws in layers.items():
            g = mw.create_group(layer)
            names = [("%s/%s:0" % (o, n)).encode() for o, (n, _) in zip(owners[layer], ws)]
            save_attr(g, "weight_names", names)
            for nm, (_, v) in zip(names, ws):
                g.create_dataset(nm.decode(), data=v)


def one_layer(out, name, edit):
    """conv2dt_same_s2_k3's weights in Keras 3's save_weights layout, edited."""
    k = np.load(os.path.join(L1, "kernel.npy"))
    b = np.load(os.path.join(L1, "bias.npy"))
    with h5py.File(os.path.join(out, name), "w") as f:
        g = f.create_group("layers/conv2d_transpose/vars")
        edit(f, g, k, b)


def plain(f, g, k, b):
    g["0"] = k
    g["1"] = b


def write_layer_files(out):
    one_layer(out, "f64be.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", data=k.astype(">f8")), g.create_dataset("1", data=b.astype(">f8"))))
    one_layer(out, "gzip.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", data=k, chunks=k.shape, compression="gzip", shuffle=True),
        g.create_dataset("1", data=b)))
    one_layer(out, "h_int.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", data=k.astype(np.int32)), g.create_dataset("1", data=b)))
    one_layer(out, "h_f16.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", data=k.astype(np.float16)), g.create_dataset("1", data=b)))
    one_layer(out, "h_rank6.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", data=np.zeros((1, 1, 1, 1, 1, 1), np.float32)),
        g.create_dataset("1", data=b)))
    one_layer(out, "h_lie.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", shape=(3, 3, 4, 2000000), dtype=np.float32),
        g.create_dataset("1", data=b)))
    one_layer(out, "h_soft.weights.h5", lambda f, g, k, b: (
        g.create_dataset("1", data=b), g.__setitem__("0", h5py.SoftLink(g.name + "/1"))))
    one_layer(out, "h_ext.weights.h5", lambda f, g, k, b: (
        g.create_dataset("1", data=b),
        g.__setitem__("0", h5py.ExternalLink("/etc/passwd", "/x"))))
    one_layer(out, "h_extdata.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", shape=k.shape, dtype=np.float32,
                         external=[("/etc/hostname", 0, h5py.h5f.UNLIMITED)]),
        g.create_dataset("1", data=b)))
    one_layer(out, "h_lzf.weights.h5", lambda f, g, k, b: (
        g.create_dataset("0", data=k, chunks=k.shape, compression="lzf"),
        g.create_dataset("1", data=b)))

    def cycle(f, g, k, b):
        plain(f, g, k, b)
        del f["layers/conv2d_transpose"]
        f["layers"]["conv2d_transpose"] = f["layers"]
    one_layer(out, "h_cycle.weights.h5", cycle)
    # Legacy models whose attributes are the problem.
    src = os.path.join(L1, "model.h5")
    for name, cfg in (("h_bigattr.h5", None), ("h_notutf8.h5", b'{"a": "\xff\xfe"}'),
                      ("h_notjson.h5", b"{not json")):
        shutil.copyfile(src, os.path.join(out, name))
        with h5py.File(os.path.join(out, name), "a") as f:
            if cfg is None:
                cfg = f.attrs["model_config"] + " " * (2 << 20)
            del f.attrs["model_config"]
            f.attrs["model_config"] = np.bytes_(cfg) if isinstance(cfg, bytes) else cfg


def patch_sizes(data, member, size):
    """Rewrites member's uncompressed size in its local and central headers."""
    data = bytearray(data)
    name = member.encode()
    for sig, off_size, off_name in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        i = 0
        while (i := data.find(sig, i)) >= 0:
            nlen = struct.unpack_from("<H", data, i + (26 if sig == b"PK\x03\x04" else 28))[0]
            if bytes(data[i + off_name:i + off_name + nlen]) == name:
                struct.pack_into("<I", data, i + off_size, size)
            i += 4
    return bytes(data)


def write_zips(out):
    keras = open(os.path.join(L1, "model.keras"), "rb").read()
    open(os.path.join(out, "z_trunc.keras"), "wb").write(keras[:len(keras) // 2])
    with zipfile.ZipFile(os.path.join(out, "z_many.keras"), "w") as z:
        for i in range(100):
            z.writestr("m%d" % i, "x")
    with zipfile.ZipFile(io.BytesIO(keras)) as src:
        members = {n: src.read(n) for n in src.namelist()}
    with zipfile.ZipFile(os.path.join(out, "z_big.keras"), "w", zipfile.ZIP_DEFLATED) as z:
        for n, v in members.items():
            z.writestr(n, v)
        z.writestr("padding.bin", bytes(2 << 20))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", members["metadata.json"])
        z.writestr("config.json", members["config.json"] + b" " * (1 << 20))
        z.writestr("model.weights.h5", members["model.weights.h5"])
    open(os.path.join(out, "z_lie.keras"), "wb").write(
        patch_sizes(buf.getvalue(), "config.json", len(members["config.json"])))
    crc = bytearray(keras)
    at = crc.find(b"PK\x03\x04")
    while at >= 0 and bytes(crc[at + 30:at + 41]) != b"config.json":
        at = crc.find(b"PK\x03\x04", at + 4)
    crc[at + 30 + 11 + 20] ^= 0x20      # a byte inside config.json's data
    open(os.path.join(out, "z_crc.keras"), "wb").write(bytes(crc))
    with zipfile.ZipFile(os.path.join(out, "z_bzip2.keras"), "w") as z:
        z.writestr("metadata.json", members["metadata.json"])
        z.writestr("config.json", members["config.json"], compress_type=zipfile.ZIP_BZIP2)
        z.writestr("model.weights.h5", members["model.weights.h5"])
    with zipfile.ZipFile(os.path.join(out, "z_notutf8.keras"), "w") as z:
        z.writestr("metadata.json", members["metadata.json"])
        z.writestr("config.json", b'{"class_name": "Sequential\xff"}')
        z.writestr("model.weights.h5", members["model.weights.h5"])
    with zipfile.ZipFile(os.path.join(out, "z_noweights.keras"), "w") as z:
        z.writestr("metadata.json", members["metadata.json"])
        z.writestr("config.json", members["config.json"])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write_k2(out)
    write_k3(out)
    write_vae(out)
    write_layer_files(out)
    write_zips(out)


if __name__ == "__main__":
    main()
