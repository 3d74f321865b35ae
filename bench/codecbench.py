"""Codec vs simdjson (issue 14 goal 4): part of row 4 of the bench.

Called by run.py in its codec phase. bench/simdjson_floats decodes the same
131072 float32 values with deconvd's dcv_float_array_parse and with Debian's
libsimdjson (On Demand, get_double() cast to float), interleaved, medians,
from two texts: the one a Python client sends (json.dumps of tolist(),
compact separators) and the one deconvd's encoder writes. Before using the
numbers this checks that the harness's "python" text is byte for byte what
Python's json.dumps writes for those values.
"""
import json
import os

import numpy as np


def run(rb, bindir, workdir, secs):
    """Runs the harness; returns its JSON plus the text check, or None if absent."""
    exe = os.path.join(bindir, "simdjson_floats")
    if not os.path.exists(exe):
        return None
    d = os.path.join(workdir, "codec_texts")
    os.makedirs(d, exist_ok=True)
    rc, out, err = rb.run_cmd([exe, "-t", str(secs), "-w", d], timeout=300)
    if err:
        rb.log(err.strip())
    if rc:
        raise RuntimeError(f"simdjson_floats rc={rc}")
    res = json.loads(out)
    x = np.fromfile(os.path.join(d, "values.f32"), dtype="<f4")
    with open(os.path.join(d, "python.json")) as f:
        res["python_text_is_json_dumps"] = f.read() == json.dumps(x.tolist(), separators=(",", ":"))
    return res


def goals(r, g):
    sj = r.get("codec_simdjson")
    if not sj:
        return
    g.append(("4 codec decode vs simdjson, Python text", sj["ratio_python"], ">= 1.0",
              sj["ratio_python"] >= 1.0 and sj["python_text_is_json_dumps"]))
    g.append(("4 codec decode vs simdjson, deconvd text", sj["ratio_deconvd"], ">= 1.0",
              sj["ratio_deconvd"] >= 1.0))


def lines(r, q):
    sj = r.get("codec_simdjson")
    if not sj:
        return []
    row = "| {} | {} B | {} | {} | {} | {} | **×{}** |"
    return [
        "",
        f"Decoding vs simdjson {sj['simdjson_version']} (On Demand `get_double()` → float, "
        f"{sj['simdjson_ondemand']} kernel, stage 1 {sj['simdjson_stage1']}; its padded copy made once, "
        f"outside the timing), {sj['count']} floats, interleaved medians; Python text "
        f"{'identical to' if sj['python_text_is_json_dumps'] else 'DIFFERENT FROM'} `json.dumps(x.tolist())`; "
        f"deconvd {'bit-exact' if sj['deconvd_exact'] else 'NOT EXACT'}, simdjson's double→float cast off on "
        f"{sj['python_simdjson_mismatches']} + {sj['deconvd_simdjson_mismatches']} values:",
        "",
        "| text | size | deconvd ns/value | deconvd MB/s | simdjson ns/value | simdjson MB/s | deconvd / simdjson |",
        "|---|---|---|---|---|---|---|",
        row.format("Python `tolist()`", sj["text_bytes_python"], q(sj["python_deconvd_ns_per_value"], 1),
                   q(sj["python_deconvd_mb_s"], 0), q(sj["python_simdjson_ns_per_value"], 1),
                   q(sj["python_simdjson_mb_s"], 0), q(sj["ratio_python"], 2)),
        row.format("deconvd's output", sj["text_bytes_deconvd"], q(sj["deconvd_deconvd_ns_per_value"], 1),
                   q(sj["deconvd_deconvd_mb_s"], 0), q(sj["deconvd_simdjson_ns_per_value"], 1),
                   q(sj["deconvd_simdjson_mb_s"], 0), q(sj["ratio_deconvd"], 2)),
    ]
