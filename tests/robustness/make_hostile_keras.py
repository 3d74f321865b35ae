#!/usr/bin/python3
"""make_hostile_keras.py — a catalogue of hostile and broken Keras files.

    /usr/bin/python3 tests/robustness/make_hostile_keras.py OUTDIR [--small] [--no-special]

Writes into OUTDIR (a models directory, or a scratch folder) one file per
case, named h_<case>.keras / .h5 / .json, and OUTDIR/catalogue.json: a list
of {"name", "file", "what", "cause", "big", "special", "may_load",
"crashes_hdf5"} where
"cause" is a regular expression (case-insensitive) that the load error
should match besides the file's name, and "may_load" marks the few files
that a reader may also serve correctly (float64 or big-endian weights:
converting them to float32 is exact), and "crashes_hdf5" the files on
which libhdf5 1.10.8 itself reads out of bounds (any process reading them
may die: only an isolated reader survives them; not for in-process
fuzzing). Two controls (ctl_keras, ctl_h5) are rebuilt by the same code
from the same arrays without any defect: they must load, which shows that
each hostile case fails for its own defect and not for the generator's.

Built from tests/data/keras/hostile/ (Keras 3.15.1's conv2dt_same_s2_k3
fixture: model.keras, model.h5) with zipfile-free raw zip writing (so that
headers can lie), h5py for HDF5 (file images in memory) and raw byte edits.

--small leaves out the cases whose files or inflated sizes are large (zip
bombs, giant members and attributes): for fuzz seed corpora.
--no-special leaves out the non-regular entries (directory, FIFO, symlinks).
"""
import argparse
import io
import json
import os
import random
import struct
import sys
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BASE = os.path.join(ROOT, "tests", "data", "keras", "hostile")

MiB = 1 << 20
GiB = 1 << 30
BOMB_BYTES = 5 * GiB // 2          # 2.5 GiB inflated: past the 2 GiB member default
GIANT_ATTR_BYTES = 40 * MiB        # a real attribute past the 16 MiB default
LIE_ATTR_BYTES = 400 * MiB         # what the lying attribute declares


# ------------------------------------------------------------------ base

def base_parts():
    """(metadata text, config dict, kernel, bias, legacy model_config text)
    read from the committed Keras fixture."""
    import zipfile
    with zipfile.ZipFile(os.path.join(BASE, "model.keras")) as z:
        meta = z.read("metadata.json").decode()
        cfg = json.loads(z.read("config.json"))
        wimg = z.read("model.weights.h5")
    with h5py.File(io.BytesIO(wimg), "r") as f:
        kernel = f["layers/conv2d_transpose/vars/0"][()]
        bias = f["layers/conv2d_transpose/vars/1"][()]
    with h5py.File(os.path.join(BASE, "model.h5"), "r") as f:
        legacy_cfg = f.attrs["model_config"]
    return meta, cfg, kernel, bias, legacy_cfg


META, CONFIG, KERNEL, BIAS, LEGACY_CFG = base_parts()
LAYER = CONFIG["config"]["layers"][1]["config"]["name"]          # conv2dt_same_s2_k3
MODEL = CONFIG["config"]["name"]                                  # m_conv2dt_same_s2_k3
VARS = "layers/conv2d_transpose/vars"


def noise(n):
    """n reproducible pseudo-random bytes (seed corpora stay the same)."""
    return random.Random(n).randbytes(n)


# ------------------------------------------------------------------ zip

def deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def deflate_repeat(byte, total):
    """A raw deflate stream of `total` copies of `byte`, built from one
    full-flushed 1 MiB block repeated (each such block is compressed
    independently, so the copies are identical): gigabytes in a few MB,
    in well under a second. Returns (stream, crc32)."""
    chunk = bytes([byte]) * MiB
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    c2 = zlib.compressobj(9, zlib.DEFLATED, -15)
    c2.compress(chunk)
    again = c2.flush(zlib.Z_FULL_FLUSH)
    assert total % MiB == 0
    n = total // MiB
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    if block != again:
        raise RuntimeError("zlib's full-flush blocks differ; cannot build the bomb")
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(chunk, crc)
    return block * n + tail, crc


class Member:
    """One zip member: stored (method 0) or deflated (8) data; declared
    sizes default to the true ones and may be made to lie."""

    def __init__(self, name, data=None, method=0, raw=None, crc=None, usize=None,
                 declared_usize=None, declared_csize=None):
        self.name = name.encode() if isinstance(name, str) else name
        if isinstance(data, str):
            data = data.encode()
        if raw is None:
            raw = deflate(data) if method == 8 else data
            crc, usize = zlib.crc32(data), len(data)
        self.raw, self.method, self.crc, self.usize = raw, method, crc, usize
        self.dusize = usize if declared_usize is None else declared_usize
        self.dcsize = len(raw) if declared_csize is None else declared_csize


def zip_bytes(members, count=None):
    """A zip archive (no zip64, no data descriptors) of Member objects.
    count overrides the member count the end record declares."""
    out, central = bytearray(), bytearray()
    for m in members:
        off = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, m.method, 0, 0x21, m.crc,
                           m.dcsize, m.dusize, len(m.name), 0) + m.name + m.raw
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, m.method, 0, 0x21,
                               m.crc, m.dcsize, m.dusize, len(m.name), 0, 0, 0, 0, 0,
                               off) + m.name
    n = len(members) if count is None else count
    cd_off = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n & 0xFFFF, n & 0xFFFF, len(central),
                       cd_off, 0)
    return bytes(out)


def keras_zip(meta=None, config=None, weights=None, extra=(), drop=(), method=0):
    """A .keras archive like Keras's: metadata.json, config.json,
    model.weights.h5 (each replaceable by bytes, str or a Member)."""
    parts = [("metadata.json", META if meta is None else meta),
             ("config.json", json.dumps(CONFIG) if config is None else config),
             ("model.weights.h5", weights_h5() if weights is None else weights)]
    ms = []
    for name, v in parts:
        if name in drop:
            continue
        if isinstance(v, dict):
            v = json.dumps(v)
        ms.append(v if isinstance(v, Member) else Member(name, v, method))
    return zip_bytes(ms + list(extra))


# ------------------------------------------------------------------ HDF5

def h5_image(build, libver=None):
    """The bytes of an HDF5 file that build(f) writes (in memory)."""
    bio = io.BytesIO()
    kw = {"libver": libver} if libver else {}
    with h5py.File(bio, "w", **kw) as f:
        build(f)
    return bio.getvalue()


def weights_h5(kernel=None, bias=None, mutate=None, libver=None):
    """Keras 3's model.weights.h5 for the fixture model; mutate(f, vars)
    then edits it (vars: the layer's vars group)."""
    def build(f):
        g = f.create_group(VARS)
        g.attrs["name"] = LAYER
        f.create_group("vars").attrs["name"] = MODEL
        g.create_dataset("0", data=KERNEL if kernel is None else kernel)
        g.create_dataset("1", data=BIAS if bias is None else bias)
        if mutate:
            mutate(f, g)
    return h5_image(build, libver)


def legacy_h5(model_config=None, weight_names=None, mutate=None, libver=None):
    """A legacy whole-model .h5 like Keras's model.save("x.h5")."""
    def build(f):
        f.attrs["backend"] = "torch"
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["model_config"] = LEGACY_CFG if model_config is None else model_config
        mw = f.create_group("model_weights")
        mw.attrs["backend"] = "torch"
        mw.attrs["keras_version"] = "3.15.1"
        mw.attrs["layer_names"] = np.array([LAYER], dtype=h5py.string_dtype())
        lg = mw.create_group(LAYER)
        names = weight_names or ["%s/%s/kernel" % (MODEL, LAYER), "%s/%s/bias" % (MODEL, LAYER)]
        lg.attrs["weight_names"] = np.array(names, dtype=h5py.string_dtype())
        g = lg.create_group("%s/%s" % (MODEL, LAYER))
        g.create_dataset("kernel", data=KERNEL)
        g.create_dataset("bias", data=BIAS)
        mw.create_group("top_level_model_weights").attrs["weight_names"] = np.array([])
        if mutate:
            mutate(f, g)
    return h5_image(build, libver)


def lying_vlen_attr(img, marker, declared):
    """Edits an HDF5 image so that the variable-length string whose value
    is `marker` (in an attribute) declares `declared` bytes: its length in
    the attribute's vlen reference and its object's size in the global heap
    collection that holds it. The file stays small; a reader that trusts
    either size allocates or reads hundreds of MB."""
    img = bytearray(img)
    gcol = img.find(b"GCOL")
    while gcol >= 0:
        i = img.find(struct.pack("<IQ", len(marker), gcol))
        j = img.find(marker, gcol)
        if i >= 0 and j >= 0:
            break
        gcol = img.find(b"GCOL", gcol + 4)
    else:
        raise RuntimeError("no vlen reference to the marker in a global heap collection")
    img[i:i + 4] = struct.pack("<I", declared)
    size_at = j - 8                  # heap object: index(2) refcount(2) reserved(4) size(8)
    if struct.unpack_from("<Q", img, size_at)[0] != len(marker):
        raise RuntimeError("global heap object size not where expected")
    struct.pack_into("<Q", img, size_at, declared)
    return bytes(img)


# ------------------------------------------------------------------ cases

CASES = []


def case(name, what, cause, ext=".keras", big=False, special=False, may_load=False,
         crashes_hdf5=False):
    def reg(fn):
        CASES.append({"name": name, "file": "h_%s%s" % (name, ext) if not
                      name.startswith("ctl_") else name + ext, "what": what, "cause": cause,
                      "big": big, "special": special, "may_load": may_load,
                      "crashes_hdf5": crashes_hdf5, "make": fn})
        return fn
    return reg


def config_with(layer_class=None, **cfg_updates):
    c = json.loads(json.dumps(CONFIG))
    layer = c["config"]["layers"][1]
    if layer_class:
        layer["class_name"] = layer_class
    layer["config"].update(cfg_updates)
    return c


# controls
case("ctl_keras", "control: the generator's own .keras, no defect (must load)", "")(
    lambda d: keras_zip())
case("ctl_h5", "control: the generator's own legacy .h5, no defect (must load)", "",
     ext=".h5")(lambda d: legacy_h5())

# --- the zip layer
GOOD_ZIP = None


def good_zip():
    global GOOD_ZIP
    if GOOD_ZIP is None:
        GOOD_ZIP = keras_zip()
    return GOOD_ZIP


for frac in (0, 4, 30, 50, 90):
    case("trunc_zip_%02d" % frac, "zip cut at %d%% of its length" % frac,
         r"zip|truncat|end of (central|file)|archive|short|empty")(
        lambda d, frac=frac: good_zip()[:len(good_zip()) * frac // 100])
case("trunc_zip_cd", "zip cut inside its central directory (last 30 bytes gone)",
     r"zip|truncat|central|archive")(lambda d: good_zip()[:-30])
case("trunc_zip_member", "zip whose local data is cut but whose central directory is intact "
     "(model.weights.h5 shortened in place)", r"zip|truncat|crc|model\.weights\.h5|hdf5|read")(
    lambda d: _cut_member_data(good_zip(), b"model.weights.h5"))


def _cut_member_data(z, name):
    """Zeroes the second half of a stored member's bytes: sizes intact,
    content and CRC wrong."""
    z = bytearray(z)
    i = z.find(name)                        # first hit: the local header's name
    size = struct.unpack_from("<I", z, i - 30 + 18)[0]
    start = i + len(name)
    z[start + size // 2:start + size] = bytes(size - size // 2)
    return bytes(z)


case("bomb_honest", "zip bomb: model.weights.h5 deflates from 2.5 MB to 2.5 GiB, sizes "
     "declared honestly", r"model\.weights\.h5|zip|member|large|bomb|limit|bytes",
     big=True)(lambda d: _bomb(False))
case("bomb_lying", "zip bomb: model.weights.h5 inflates to 2.5 GiB while its headers "
     "declare 10 000 bytes", r"model\.weights\.h5|zip|member|size|large|limit|crc|inconsistent",
     big=True)(lambda d: _bomb(True))
case("bomb_config", "zip bomb in config.json: 2.5 GiB of spaces, sizes honest",
     r"config\.json|zip|member|large|limit|bytes", big=True)(lambda d: _bomb(False, "config.json"))


def _bomb(lie, member="model.weights.h5"):
    raw, crc = deflate_repeat(0x20 if member.endswith(".json") else 0, BOMB_BYTES)
    m = Member(member, raw=raw, method=8, crc=crc, usize=BOMB_BYTES,
               declared_usize=10000 if lie else None)
    return keras_zip(**{{"model.weights.h5": "weights", "config.json": "config"}[member]: m})


case("many_members", "zip with 5000 members (past the 64 default)",
     r"member|zip|too many|entries|limit")(
    lambda d: keras_zip(extra=[Member("pad/%05d" % i, b"") for i in range(5000)]))
case("count_lies", "zip whose end record declares 65535 members but holds 3",
     r"zip|member|central|entries|inconsistent|archive")(lambda d: _count_lie())


def _count_lie():
    z = bytearray(good_zip())
    e = z.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", z, e + 8, 0xFFFF, 0xFFFF)
    return bytes(z)


case("dup_member", "zip with config.json twice (a valid one, then one naming Conv2D "
     "with 999 filters)", r"config\.json|duplicate|twice|member|zip")(
    lambda d: keras_zip(extra=[Member("config.json", json.dumps(config_with(filters=999)))]))
case("no_weights", "zip without model.weights.h5", r"model\.weights\.h5|missing|no such|not found")(
    lambda d: keras_zip(drop=("model.weights.h5",)))
case("no_config", "zip without config.json", r"config\.json|missing|no such|not found")(
    lambda d: keras_zip(drop=("config.json",)))
case("no_metadata", "zip without metadata.json (Keras 3 loads without it; the version is then "
     "unknown)", r"metadata\.json|missing|no such|not found", may_load=True)(
    lambda d: keras_zip(drop=("metadata.json",)))
case("method_bzip2", "zip whose config.json claims bzip2 compression (method 12)",
     r"config\.json|compress|method|unsupported|zip")(
    lambda d: keras_zip(config=Member("config.json", raw=b"BZh9" + bytes(60), method=12, crc=0,
                                      usize=5000)))
case("encrypted", "zip whose members are flagged encrypted",
     r"encrypt|zip|unsupported|password|member")(lambda d: _flag_encrypted())


def _flag_encrypted():
    z = bytearray(good_zip())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        i = z.find(sig)
        while i >= 0:
            struct.pack_into("<H", z, i + flag_at, 1)
            i = z.find(sig, i + 4)
    return bytes(z)


case("bad_crc", "zip whose config.json CRC is wrong", r"crc|checksum|config\.json|zip|corrupt")(
    lambda d: keras_zip(config=Member("config.json", raw=json.dumps(CONFIG).encode(),
                                      crc=0xDEADBEEF, usize=len(json.dumps(CONFIG)))))
case("deflate_garbage", "zip whose deflated config.json is random bytes",
     r"config\.json|inflat|deflat|zip|corrupt|crc|compress")(
    lambda d: keras_zip(config=Member("config.json", raw=noise(512), method=8,
                                      crc=0, usize=1571)))

# --- metadata.json / config.json
case("meta_not_utf8", "metadata.json not UTF-8", r"metadata\.json|utf-?8|json|pars")(
    lambda d: keras_zip(meta=b'{"keras_version": "3.15\xff\xfe.1"}'))
case("meta_not_json", "metadata.json not JSON", r"metadata\.json|json|pars")(
    lambda d: keras_zip(meta=b"keras_version=3.15.1"))
case("meta_version_type", "metadata.json whose keras_version is a 10 kB object (ignoring it "
     "is fine)", r"metadata\.json|keras_version|string|json", may_load=True)(
    lambda d: keras_zip(meta=json.dumps({"keras_version": {"x": "y" * 10000}})))
case("config_not_utf8", "config.json with a byte 0xFF inside a layer name",
     r"config\.json|utf-?8|json|pars")(
    lambda d: keras_zip(config=json.dumps(CONFIG).encode().replace(
        LAYER.encode(), LAYER.encode()[:4] + b"\xff\xc0" + LAYER.encode()[4:])))
case("config_not_json", "config.json not JSON (cut in half)", r"config\.json|json|pars")(
    lambda d: keras_zip(config=json.dumps(CONFIG)[:700]))
case("config_deep", "config.json nested 100 000 arrays deep",
     r"config\.json|json|pars|deep|nest")(lambda d: keras_zip(config="[" * 100000 + "]" * 100000))
case("config_giant", "config.json of 300 MB (valid JSON: the config padded with spaces), "
     "deflated to a few hundred KB", r"config\.json|large|limit|bytes|member|size", big=True)(
    lambda d: _giant_config())


def _giant_config():
    pad, crc_pad = 300 * MiB, None
    text = json.dumps(CONFIG).encode()
    # spaces then the config: deflated blocks of spaces + the text
    raw_pad, _ = deflate_repeat(0x20, pad)
    # the repeated stream ends with a final empty block; rebuild with the
    # text appended instead: (full-flushed blocks) + deflate(text, final)
    blocks = raw_pad[:-len(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))]
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    raw = blocks + c.compress(text) + c.flush()
    crc_pad = 0
    chunk = b" " * MiB
    for _ in range(pad // MiB):
        crc_pad = zlib.crc32(chunk, crc_pad)
    crc = zlib.crc32(text, crc_pad)
    return keras_zip(config=Member("config.json", raw=raw, method=8, crc=crc,
                                   usize=pad + len(text)))


case("config_foreign_class", "config.json whose transposed convolution is an LSTM named "
     "conv2dt_same_s2_k3", r"LSTM.*conv2dt_same_s2_k3|conv2dt_same_s2_k3.*LSTM")(
    lambda d: keras_zip(config=json.dumps(config_with("LSTM", units=4))))
case("config_lambda", "config.json with a Lambda layer carrying Python bytecode",
     r"Lambda")(lambda d: keras_zip(config=json.dumps(_with_lambda())))


def _with_lambda():
    c = json.loads(json.dumps(CONFIG))
    c["config"]["layers"].append({"module": "keras.layers", "class_name": "Lambda",
                                  "config": {"name": "evil", "function": {
                                      "class_name": "__lambda__",
                                      "config": {"code": "4wEAAAAAAAAA", "defaults": None,
                                                 "closure": None}}},
                                  "registered_name": None})
    return c


case("config_not_object", "config.json is a JSON array", r"config\.json|object|class_name|model")(
    lambda d: keras_zip(config="[1, 2, 3]"))

# --- model.weights.h5
GOOD_W = None


def good_w():
    global GOOD_W
    if GOOD_W is None:
        GOOD_W = weights_h5()
    return GOOD_W


for frac in (10, 50, 95):
    case("w_trunc_%02d" % frac, "model.weights.h5 cut at %d%%" % frac,
         r"model\.weights\.h5|hdf5|h5|truncat|read|open|eof|signature")(
        lambda d, frac=frac: keras_zip(weights=good_w()[:len(good_w()) * frac // 100]))
case("w_not_hdf5", "model.weights.h5 is 4 KiB of random bytes",
     r"model\.weights\.h5|hdf5|h5|signature|open|not")(
    lambda d: keras_zip(weights=noise(4096)))
case("w_superblock_lies", "model.weights.h5 whose superblock end-of-file address is 2^60",
     r"model\.weights\.h5|hdf5|h5|eof|truncat|open|size|address")(lambda d: _eof_lie())


def _eof_lie():
    """Superblock version 0 (h5py's default): 24 bytes of fields, then the
    base, free-space and end-of-file addresses."""
    img = bytearray(good_w())
    if img[:8] != b"\x89HDF\r\n\x1a\n" or img[8] != 0:
        raise RuntimeError("expected an HDF5 superblock version 0")
    struct.pack_into("<Q", img, 24 + 16, 1 << 60)
    return keras_zip(weights=bytes(img))


def _w(mutate, **kw):
    return lambda d: keras_zip(weights=weights_h5(mutate=mutate, **kw))


def _replace(g, key, **dset):
    del g[key]
    g.create_dataset(key, **dset)


case("w_int", "vars/0 (the kernel) stored as int32", r"vars/0|int|type|float|kernel")(
    _w(lambda f, g: _replace(g, "0", data=KERNEL.astype(np.int32))))
case("w_float64", "vars/0 stored as float64 (a reader converting is fine; one refusing "
     "must name it)", r"vars/0|float64|double|type|float", may_load=True)(
    _w(lambda f, g: _replace(g, "0", data=KERNEL.astype(np.float64))))
case("w_string", "vars/1 (the bias) is a variable-length string dataset",
     r"vars/1|string|type|float|bias")(
    _w(lambda f, g: _replace(g, "1", data=np.array(["a", "bb", "ccc", "dddd"],
                                                   dtype=h5py.string_dtype()))))
case("w_compound", "vars/0 is a compound (float32, int8) dataset",
     r"vars/0|compound|type|float|kernel")(
    _w(lambda f, g: _replace(g, "0", data=np.zeros(KERNEL.shape,
                                                   dtype=[("a", "<f4"), ("b", "i1")]))))
case("w_big_endian", "vars/0 stored as big-endian float32 (converting is fine; refusing "
     "must name it)", r"vars/0|endian|type|float", may_load=True)(
    _w(lambda f, g: _replace(g, "0", data=KERNEL.astype(">f4"))))
case("w_rank", "vars/0 has rank 2 (36, 2) instead of (3, 3, 4, 2)",
     r"vars/0|kernel|rank|shape|dim")(_w(lambda f, g: _replace(g, "0", data=KERNEL.reshape(36, 2))))
case("w_rank_high", "vars/0 has rank 32 (HDF5's most)", r"vars/0|kernel|rank|shape|dim")(
    _w(lambda f, g: _replace(g, "0", shape=(1,) * 32, dtype="<f4")))
case("w_shape_lie", "vars/0 is (3, 3, 5, 2) while the config says filters=4",
     r"kernel|shape|conv2dt_same_s2_k3|filters|\(3, ?3, ?4, ?2\)|3x3x4x2")(
    _w(lambda f, g: _replace(g, "0", data=np.zeros((3, 3, 5, 2), dtype="<f4"))))
case("w_bias_lie", "vars/1 (the bias) has 5 values, filters=4",
     r"bias|shape|conv2dt_same_s2_k3|filters")(
    _w(lambda f, g: _replace(g, "1", data=np.zeros(5, dtype="<f4"))))
case("w_missing_var", "vars/1 (the bias) is missing, use_bias true",
     r"bias|vars/1|missing|conv2dt_same_s2_k3|weights")(_w(lambda f, g: g.__delitem__("1")))
case("w_extra_var", "a third variable vars/2 for a layer that has two",
     r"vars/2|weights|conv2dt_same_s2_k3|extra|unexpected|count|expected")(
    _w(lambda f, g: g.create_dataset("2", data=BIAS)))
case("w_huge_decl", "vars/0 declares 2^40 float32 elements (chunked, unallocated: the file "
     "stays small)", r"vars/0|element|large|limit|size|max_weight_elems")(
    _w(lambda f, g: _replace(g, "0", shape=(1 << 20, 1 << 20), dtype="<f4",
                             chunks=(1, 1024))))
case("w_huge_contig", "vars/0 declares 2^40 float32 elements, contiguous, never written",
     r"vars/0|element|large|limit|size|max_weight_elems|file")(
    _w(lambda f, g: _replace(g, "0", shape=(1 << 20, 1 << 20), dtype="<f4")))
case("w_zero_dim", "vars/0 has a zero dimension (3, 3, 0, 2)",
     r"vars/0|kernel|shape|empty|zero|conv2dt_same_s2_k3")(
    _w(lambda f, g: _replace(g, "0", shape=(3, 3, 0, 2), dtype="<f4")))
case("w_scalar", "vars/0 is a scalar", r"vars/0|kernel|scalar|rank|shape")(
    _w(lambda f, g: _replace(g, "0", data=np.float32(1.0))))
case("w_external_storage", "vars/0 keeps its data in an external raw file (/etc/passwd)",
     r"vars/0|external|storage|layout|file")(
    _w(lambda f, g: _replace(g, "0", shape=KERNEL.shape, dtype="<f4",
                             external=[("/etc/passwd", 0, KERNEL.nbytes)])))
case("w_filters", "vars/0 compressed with a filter the reader may lack (shuffle+gzip+"
     "fletcher32: fine when read; refused must name it)", r"vars/0|filter|compress|gzip|fletcher",
     may_load=True)(
    _w(lambda f, g: _replace(g, "0", data=KERNEL, chunks=True, compression="gzip",
                             shuffle=True, fletcher32=True)))
case("w_gzip_bomb", "vars/0 gzip-chunked: one 64 MiB chunk of zeros, declared (4096, 4096) "
     "float32, 64 MiB past max_weight_elems", r"vars/0|element|large|limit|size|shape|kernel",
     big=True)(_w(lambda f, g: _replace(g, "0", shape=(4096, 4096), dtype="<f4",
                                         chunks=(4096, 4096), compression="gzip",
                                         data=np.zeros((4096, 4096), "<f4"))))
case("w_cycle", "a hard link vars/loop → /layers: a cycle off the weight paths (harmless "
     "while nothing walks the tree)", r"cycle|loop|link|depth|vars|layers", may_load=True)(
    _w(lambda f, g: g.__setitem__("loop", f["layers"])))
case("w_cycle_root", "a hard link vars/root → / (off the weight paths)",
     r"cycle|loop|link|depth|vars", may_load=True)(_w(lambda f, g: g.__setitem__("root", f["/"])))
case("w_cycle_on_path", "layers/conv2d_transpose/vars is a hard link to its own parent, which "
     "holds the datasets: the weight path crosses a cycle (a reader ignoring it would load)",
     r"cycle|loop|link|above|vars")(lambda d: keras_zip(weights=_cycle_on_path()))


def _cycle_on_path():
    def build(f):
        p = f.create_group("layers/conv2d_transpose")
        p.create_dataset("0", data=KERNEL)
        p.create_dataset("1", data=BIAS)
        p["vars"] = p
        p.attrs["name"] = LAYER
        f.create_group("vars").attrs["name"] = MODEL
    return h5_image(build)


case("w_deep", "a chain of 200 nested groups under layers/ (off the weight paths)",
     r"depth|deep|nest|link|layers|group", may_load=True)(
    lambda d: keras_zip(weights=weights_h5(
        mutate=lambda f, g: f.create_group("layers/" + "/".join(["d"] * 200)))))
case("w_external_link", "vars/0 is an external link to /etc/passwd:/",
     r"vars/0|external|link")(_w(lambda f, g: (g.__delitem__("0"), g.__setitem__(
        "0", h5py.ExternalLink("/etc/passwd", "/")))))
case("w_external_link_h5", "vars/0 is an external link to a real HDF5 file beside it "
     "(ext_target.data:/k)", r"vars/0|external|link")(lambda d: _ext_to_real(d))


def _ext_to_real(d):
    def t(f):
        f.create_dataset("k", data=KERNEL)
    with open(os.path.join(d, "ext_target.data"), "wb") as fh:
        fh.write(h5_image(t))
    return keras_zip(weights=weights_h5(mutate=lambda f, g: (g.__delitem__("0"), g.__setitem__(
        "0", h5py.ExternalLink("ext_target.data", "/k")))))


case("w_soft_link", "vars/0 is a soft link to vars/1 (a 4-value bias where a kernel belongs)",
     r"vars/0|soft|link|kernel|shape")(_w(lambda f, g: (g.__delitem__("0"), g.__setitem__(
        "0", h5py.SoftLink("/" + VARS + "/1")))))
case("w_soft_dangling", "vars/0 is a soft link to /nowhere", r"vars/0|soft|link|nowhere|missing")(
    _w(lambda f, g: (g.__delitem__("0"), g.__setitem__("0", h5py.SoftLink("/nowhere")))))
case("w_soft_loop", "vars/0 → vars/a → vars/0: soft links in a loop",
     r"vars/0|soft|link|loop|cycle|depth")(
    _w(lambda f, g: (g.__delitem__("0"), g.__setitem__("0", h5py.SoftLink("/" + VARS + "/a")),
                     g.__setitem__("a", h5py.SoftLink("/" + VARS + "/0")))))
case("w_vds", "vars/0 is a virtual dataset mapping /etc/passwd's (missing) dataset",
     r"vars/0|virtual|layout|external|storage")(lambda d: keras_zip(weights=_vds_weights()))


def _vds_weights():
    def mutate(f, g):
        del g["0"]
        layout = h5py.VirtualLayout(shape=KERNEL.shape, dtype="<f4")
        layout[...] = h5py.VirtualSource("/etc/passwd", "k", shape=KERNEL.shape)
        g.create_virtual_dataset("0", layout, fillvalue=1.0)
    return weights_h5(mutate=mutate, libver="latest")


case("w_giant_attr", "a real 40 MB attribute on the vars group that no reader needs (past the "
     "16 MiB default: harmless unless read)", r"attribute|large|limit|size|bytes|vars|name",
     big=True, may_load=True)(
    lambda d: keras_zip(weights=weights_h5(
        mutate=lambda f, g: g.attrs.create("blob", np.zeros(GIANT_ATTR_BYTES, "u1")),
        libver="latest")))
case("w_name_attr_lies", "the vars group's name attribute declares 400 MB (vlen length and "
     "global heap size edited; the file holds 40 bytes): harmless unless read",
     r"attribute|name|heap|large|limit|size|read|vars|hdf5|crash|signal|child",
     crashes_hdf5=True, may_load=True)(lambda d: keras_zip(weights=_lie_name()))


def _lie_name():
    marker = b"LIE_MARKER_" + b"x" * 29
    img = weights_h5(mutate=lambda f, g: g.attrs.__setitem__("name", marker.decode()))
    return lying_vlen_attr(img, marker, LIE_ATTR_BYTES)


# --- legacy .h5
case("h5_not_hdf5", "a .h5 of text", r"hdf5|h5|signature|open|not", ext=".h5")(
    lambda d: b"this is not an HDF5 file\n" * 100)
case("h5_empty", "an empty .h5", r"hdf5|h5|signature|open|empty|not", ext=".h5")(lambda d: b"")
case("h5_trunc", "a legacy .h5 cut at 60%", r"hdf5|h5|truncat|open|read|eof", ext=".h5")(
    lambda d: legacy_h5()[:len(legacy_h5()) * 6 // 10])
case("h5_no_config", "a legacy .h5 without model_config", r"model_config|missing|attribute",
     ext=".h5")(lambda d: legacy_h5(mutate=lambda f, g: f.attrs.__delitem__("model_config")))
case("h5_config_not_utf8", "model_config is fixed-length bytes with 0xFF 0xFE in a name",
     r"model_config|utf-?8|json|pars", ext=".h5")(lambda d: legacy_h5(
        mutate=lambda f, g: f.attrs.__setitem__("model_config", np.bytes_(
            LEGACY_CFG.encode().replace(LAYER.encode(), b"conv\xff\xfe")))))
case("h5_config_not_json", "model_config is not JSON", r"model_config|json|pars", ext=".h5")(
    lambda d: legacy_h5(model_config="{\"class_name\": \"Sequential\", \"config\": {"))
case("h5_config_int", "model_config is an int attribute", r"model_config|string|type|attribute",
     ext=".h5")(lambda d: legacy_h5(mutate=lambda f, g: (
        f.attrs.__delitem__("model_config"), f.attrs.__setitem__("model_config", 42))))
case("h5_config_array", "model_config is an array of 3 strings",
     r"model_config|string|type|attribute|scalar", ext=".h5")(
    lambda d: legacy_h5(mutate=lambda f, g: f.attrs.__setitem__("model_config", np.array(
        [LEGACY_CFG] * 3, dtype=h5py.string_dtype()))))
case("h5_config_giant", "model_config is a real 40 MB string (past the 16 MiB default)",
     r"model_config|attribute|large|limit|size|bytes", ext=".h5", big=True)(
    lambda d: legacy_h5(model_config=LEGACY_CFG + " " * GIANT_ATTR_BYTES, libver="latest"))
case("h5_config_lies", "model_config declares 400 MB (vlen length and global heap size "
     "edited; the file holds 1.3 kB)",
     r"model_config|attribute|heap|large|limit|size|read|hdf5|crash|signal|child",
     ext=".h5", crashes_hdf5=True)(lambda d: _legacy_lie())


def _legacy_lie():
    img = legacy_h5()
    return lying_vlen_attr(img, LEGACY_CFG.encode(), LIE_ATTR_BYTES)


case("h5_weight_names_lies", "weight_names' first string declares 400 MB (vlen length and "
     "global heap size edited; libFuzzer found the like: libhdf5 allocates and converts for "
     "as long as it is let)", r"weight_names|attribute|heap|large|limit|crash|signal|killed|"
     r"took longer|memory", ext=".h5", crashes_hdf5=True)(lambda d: lying_vlen_attr(
        legacy_h5(), ("%s/%s/kernel" % (MODEL, LAYER)).encode(), LIE_ATTR_BYTES))
case("h5_fuzz_vlen_hang", "fuzz_kfile's find (tests/data/keras/hostile/fuzz-vlen-hang.h5): "
     "libhdf5 allocates 4 GB for a lying variable-length string and converts for minutes; "
     "the load is bounded by the reader's time and memory limits (under the child's address-"
     "space limit libhdf5's allocation fails and it reports the attribute)",
     r"took longer|killed|crash|memory|signal|limit|attribute|allocation", ext=".h5", crashes_hdf5=True)(
    lambda d: open(os.path.join(BASE, "fuzz-vlen-hang.h5"), "rb").read())
case("h5_weight_names_nowhere", "weight_names point at groups that do not exist",
     r"weight_names|nowhere|missing|not found|kernel|conv2dt_same_s2_k3", ext=".h5")(
    lambda d: legacy_h5(weight_names=["nowhere/kernel:0", "nowhere/bias:0"]))
case("h5_weight_names_escape", "weight_names climb out of the layer's group "
     "(../../../model_weights/..)", r"weight_names|\.\.|path|missing|not found|conv2dt",
     ext=".h5")(lambda d: legacy_h5(weight_names=["../../%s/%s/kernel" % (MODEL, LAYER),
                                                 "/model_weights/%s/%s/%s/bias" %
                                                 (LAYER, MODEL, LAYER)]))
case("h5_weight_names_int", "weight_names is an int array", r"weight_names|string|type",
     ext=".h5")(lambda d: legacy_h5(mutate=lambda f, g: f["model_weights/" + LAYER].attrs
                                     .__setitem__("weight_names", np.arange(2))))
case("h5_no_model_weights", "a legacy .h5 without model_weights/",
     r"model_weights|missing|weights|not found", ext=".h5")(
    lambda d: legacy_h5(mutate=lambda f, g: f.__delitem__("model_weights")))
case("h5_shape_lie", "kernel (3, 3, 5, 2) while the config says filters=4",
     r"kernel|shape|conv2dt_same_s2_k3|filters", ext=".h5")(
    lambda d: legacy_h5(mutate=lambda f, g: _replace(g, "kernel", data=np.zeros(
        (3, 3, 5, 2), "<f4"))))
case("h5_int_kernel", "kernel stored as int64", r"kernel|int|type|float", ext=".h5")(
    lambda d: legacy_h5(mutate=lambda f, g: _replace(g, "kernel", data=KERNEL.astype(np.int64))))
case("h5_cycle", "a hard link inside model_weights/ back to / (off the weight paths)",
     r"cycle|loop|link|depth", ext=".h5", may_load=True)(
    lambda d: legacy_h5(mutate=lambda f, g: g.__setitem__("up", f["/"])))
case("h5_cycle_on_path", "model_weights/<layer>/<model> is a hard link to its own parent, "
     "which holds <layer>/kernel and bias: the weight_names paths cross a cycle",
     r"cycle|loop|link|above", ext=".h5")(lambda d: legacy_h5(mutate=_legacy_cycle))


def _legacy_cycle(f, g):
    lg = f["model_weights/" + LAYER]
    del lg[MODEL]
    inner = lg.create_group(LAYER)
    inner.create_dataset("kernel", data=KERNEL)
    inner.create_dataset("bias", data=BIAS)
    lg[MODEL] = lg
case("h5_external_link", "kernel is an external link to /etc/passwd:/x",
     r"kernel|external|link", ext=".h5")(lambda d: legacy_h5(mutate=lambda f, g: (
        g.__delitem__("kernel"), g.__setitem__("kernel", h5py.ExternalLink("/etc/passwd", "/x")))))
case("h5_foreign_class", "model_config whose layer is an LSTM named conv2dt_same_s2_k3",
     r"LSTM.*conv2dt_same_s2_k3|conv2dt_same_s2_k3.*LSTM", ext=".h5")(
    lambda d: legacy_h5(model_config=LEGACY_CFG.replace('"Conv2DTranspose"', '"LSTM"')))
case("h5_huge_decl", "kernel declares 2^40 float32 elements (chunked, unallocated)",
     r"kernel|element|large|limit|size|max_weight_elems", ext=".h5")(
    lambda d: legacy_h5(mutate=lambda f, g: _replace(g, "kernel", shape=(1 << 20, 1 << 20),
                                                     dtype="<f4", chunks=(1, 1024))))

# --- pointer files
case("ptr_traversal", "pointer file naming ../../../../etc/passwd",
     r"\.\.|outside|path|models|passwd|file", ext=".json")(
    lambda d: json.dumps({"file": "../../../../etc/passwd"}))
case("ptr_escape", "pointer file naming ../outside.keras, a good .keras beside the models "
     "directory", r"outside|\.\.|path|models", ext=".json")(lambda d: _ptr_escape(d))


def _ptr_escape(d):
    outside = os.path.join(os.path.dirname(os.path.abspath(d)), "outside.keras")
    with open(outside, "wb") as fh:
        fh.write(good_zip())
    return json.dumps({"file": "../outside.keras"})


case("ptr_absolute", "pointer file naming /etc/passwd", r"absolute|outside|path|passwd|file",
     ext=".json")(lambda d: json.dumps({"file": "/etc/passwd"}))
case("ptr_no_submodel", "pointer to the control .keras with submodel \"decoder\" that it lacks",
     r"decoder|submodel|not found|no layer", ext=".json")(
    lambda d: json.dumps({"file": "ctl_keras.keras", "submodel": "decoder"}))
case("ptr_submodel_not_model", "pointer whose submodel names a plain layer",
     r"conv2dt_same_s2_k3|submodel|not a model|model", ext=".json")(
    lambda d: json.dumps({"file": "ctl_keras.keras", "submodel": LAYER}))
case("ptr_to_pointer", "pointer to a pointer (h_ptr_absolute.json)",
     r"h_ptr_absolute\.json|pointer|kind|extension|file|keras|h5", ext=".json")(
    lambda d: json.dumps({"file": "h_ptr_absolute.json"}))
case("ptr_to_self", "pointer to itself", r"h_ptr_to_self|pointer|kind|extension|file|loop",
     ext=".json")(lambda d: json.dumps({"file": "h_ptr_to_self.json"}))
case("ptr_to_broken", "pointer to a truncated .keras (h_trunc_zip_50.keras)",
     r"h_trunc_zip_50\.keras|zip|truncat|archive", ext=".json")(
    lambda d: json.dumps({"file": "h_trunc_zip_50.keras"}))
case("ptr_file_type", "pointer whose file is a number", r"file|string|pointer", ext=".json")(
    lambda d: json.dumps({"file": 42}))


# --- non-regular entries
def _special(kind):
    def make(d):
        path = os.path.join(d, "h_sp_%s.keras" % kind)
        if kind == "dir":
            os.mkdir(path)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "zero":
            os.symlink("/dev/zero", path)
        elif kind == "outside":
            outside = os.path.join(os.path.dirname(os.path.abspath(d)), "outside.keras")
            with open(outside, "wb") as fh:
                fh.write(good_zip())
            os.symlink(outside, path)
        elif kind == "dangling":
            os.symlink(os.path.join(d, "no-such-file.keras"), path)
        return None
    return make


for kind, what, cause in (
        ("dir", "a directory named *.keras", r"directory|regular"),
        ("fifo", "a FIFO named *.keras", r"FIFO|regular"),
        ("zero", "a symlink named *.keras to /dev/zero", r"character device|regular|outside"),
        ("outside", "a symlink named *.keras to a good .keras outside the models directory",
         r"outside|symlink|models|regular|path"),
        ("dangling", "a dangling symlink named *.keras", r"no such|not found|ENOENT|missing")):
    case("sp_" + kind, what, cause, special=True)(_special(kind))


# ------------------------------------------------------------------ main

def write(outdir, small=False, special=True, only=None):
    os.makedirs(outdir, exist_ok=True)
    cat = []
    for c in CASES:
        if (small and c["big"]) or (not special and c["special"]):
            continue
        if only and c["name"] not in only and not c["name"].startswith("ctl_"):
            continue
        path = os.path.join(outdir, c["file"])
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)
        data = c["make"](outdir)
        if data is not None:
            if isinstance(data, str):
                data = data.encode()
            with open(path + ".tmp", "wb") as fh:
                fh.write(data)
            os.replace(path + ".tmp", path)
        cat.append({k: v for k, v in c.items() if k != "make"})
    with open(os.path.join(outdir, "catalogue.json"), "w") as fh:
        json.dump(cat, fh, indent=1)
    return cat


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--small", action="store_true", help="leave out the big cases")
    ap.add_argument("--no-special", action="store_true", help="leave out non-regular entries")
    ap.add_argument("--only", nargs="*", help="case names (controls always written)")
    a = ap.parse_args()
    cat = write(a.outdir, a.small, not a.no_special, a.only)
    for c in cat:
        p = os.path.join(a.outdir, c["file"])
        size = os.lstat(p).st_size if os.path.lexists(p) else 0
        print("%-28s %10d  %s" % (c["file"], size, c["what"]))
    print("%d files in %s" % (len(cat), a.outdir), file=sys.stderr)


if __name__ == "__main__":
    main()
