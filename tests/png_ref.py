#!/usr/bin/env python3
"""png_ref.py — an independent reference for deconvd's PNG answers.

A PNG decoder written from the PNG specification with Python's zlib and
struct (8-bit gray, RGB and RGBA, not interlaced: what deconvd writes),
checking every chunk's CRC, the chunk order and the zlib stream's end; and
the picture deconvd must draw, computed in NumPy (float64) from the floats:
    t = (v - lo) * (255 / (hi - lo));  pixel = floor(clip(t, 0, 255) + 0.5),
    NaN -> 0; channels_first outputs transposed to (N, H, W, C); a batch of
    N on a grid of cols = ceil(sqrt(N)) by rows = ceil(N / cols) tiles, GAP
    pixels apart, 0 in every channel between and after tiles.
When Pillow (python3-pil) is importable, every file is decoded by it too and
both decoders must agree. Shares no code with deconvd or libspng.

Usage:
    png_ref.py CASE_DIR...   each holds params.json ({"shape": [N, ...],
                             "channels_first": bool, "range": [lo, hi],
                             optional "expect": the grid's bytes, row-major,
                             worked by hand}), x.f32 (the floats, little-
                             endian) and out.png; exit 0 if every out.png
                             decodes to the expected picture (77: no NumPy)
"""
import json
import math
import os
import struct
import sys
import zlib

try:
    import numpy as np
except ImportError:                      # the unit test skips on 77
    print("png_ref.py: %s cannot import numpy" % sys.executable)
    sys.exit(77)

GAP = 2
SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 6: 4}            # color type -> samples a pixel


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw, width, height, bpp):
    stride = width * bpp
    out = bytearray(height * stride)
    prev = bytearray(stride)
    pos = 0
    for y in range(height):
        ftype = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if ftype > 4:
            raise ValueError("row %d: filter type %d" % (y, ftype))
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                line[i] = (line[i] + _paeth(a, b, c)) & 255
        out[y * stride:(y + 1) * stride] = line
        prev = line
    if pos != len(raw):
        raise ValueError("%d bytes of image data after the last row" % (len(raw) - pos))
    return bytes(out)


def decode_png(data):
    """(pixels as uint8 (H, W, C), {"width", "height", "channels", "chunks"})."""
    if data[:8] != SIGNATURE:
        raise ValueError("not a PNG signature: %r" % data[:8])
    pos, chunks, idat, ihdr = 8, [], b"", None
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("truncated chunk at byte %d" % pos)
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(ctype + body) & 0xffffffff != crc:
            raise ValueError("bad CRC on chunk %r" % ctype)
        chunks.append(ctype.decode("latin-1"))
        pos += 12 + length
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat += body
        elif ctype == b"IEND":
            break
    if pos != len(data):
        raise ValueError("%d bytes after IEND" % (len(data) - pos))
    if not chunks or chunks[0] != "IHDR" or chunks[-1] != "IEND" or "IDAT" not in chunks:
        raise ValueError("chunk order %s" % chunks)
    width, height, depth, ctype, comp, filt, interlace = ihdr
    if depth != 8 or ctype not in CHANNELS or comp or filt or interlace:
        raise ValueError("IHDR %s: expected 8-bit gray/RGB/RGBA, not interlaced" % (ihdr,))
    z = zlib.decompressobj()
    raw = z.decompress(idat)
    if not z.eof or z.unused_data:
        raise ValueError("zlib stream does not end where IDAT does")
    c = CHANNELS[ctype]
    px = np.frombuffer(_unfilter(raw, width, height, c), np.uint8).reshape(height, width, c)
    return px, {"width": width, "height": height, "channels": c, "chunks": chunks}


def decode_pil(data):
    """The same through Pillow, or None when it is not installed."""
    try:
        import io
        from PIL import Image
    except ImportError:
        return None
    im = Image.open(io.BytesIO(data))
    a = np.asarray(im)
    return a.reshape(a.shape[0], a.shape[1], -1)


def grid_shape(n):
    cols = math.isqrt(n - 1) + 1          # ceil(sqrt(n)) for n >= 1
    return (n + cols - 1) // cols, cols


def expected_pixels(x, lo, hi, channels_first=False):
    """The grid deconvd must draw from the floats x (N, H, W, C) or (N, C, H, W)."""
    x = np.asarray(x, np.float32)
    if channels_first:
        x = x.transpose(0, 2, 3, 1)
    n, h, w, c = x.shape
    with np.errstate(invalid="ignore", over="ignore"):
        t = (x.astype(np.float64) - lo) * (255.0 / (hi - lo))
        px = np.floor(np.clip(t, 0, 255) + 0.5)
    px[np.isnan(t)] = 0
    px = px.astype(np.uint8)
    rows, cols = grid_shape(n)
    grid = np.zeros((rows * (h + GAP) - GAP, cols * (w + GAP) - GAP, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[r * (h + GAP):r * (h + GAP) + h, k * (w + GAP):k * (w + GAP) + w] = px[i]
    return grid


def check_file(data, want):
    """None when data decodes (both ways) to want (H, W, C), else what differs."""
    got, info = decode_png(data)
    if got.shape != want.shape:
        return "picture is %s, expected %s" % (got.shape, want.shape)
    bad = np.argwhere(got != want)
    if len(bad):
        y, x, ch = bad[0]
        return "%d samples differ; first at row %d col %d channel %d: %d, expected %d" % (
            len(bad), y, x, ch, got[y, x, ch], want[y, x, ch])
    pil = decode_pil(data)
    if pil is not None and not np.array_equal(pil, got):
        return "Pillow decodes it differently"
    return None


def run_case(d):
    with open(os.path.join(d, "params.json")) as f:
        p = json.load(f)
    x = np.fromfile(os.path.join(d, "x.f32"), "<f4").reshape(p["shape"])
    lo, hi = p["range"]
    want = expected_pixels(x, lo, hi, p.get("channels_first", False))
    if "expect" in p:
        hand = np.array(p["expect"], np.uint8).reshape(want.shape)
        if not np.array_equal(hand, want):
            return "the NumPy mapping disagrees with the hand-worked pixels: %s vs %s" % (
                want.ravel().tolist(), hand.ravel().tolist())
    with open(os.path.join(d, "out.png"), "rb") as f:
        return check_file(f.read(), want)


def main(argv):
    failed = 0
    for d in argv[1:]:
        try:
            why = run_case(d)
        except Exception as e:          # a decoding failure is a test failure
            why = "%s: %s" % (type(e).__name__, e)
        if why:
            failed += 1
            print("%s: %s" % (d, why))
    return 1 if failed or len(argv) < 2 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
