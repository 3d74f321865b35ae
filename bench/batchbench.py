"""Dynamic batching rows of the bench (issue 14, goal 5): `tiny` and `audio_up`.

Called by run.py (which passes itself as `rb`, for its Daemon, client and
helpers); one section of the report, "12. Dynamic batching":

  One daemon (the shipped defaults) serves each workload twice from the same
  model file: `<w>` as is, and `<w>_b` with "dynamic_batching":
  {"max_batch": MAX_BATCH, "max_queue_delay_us": DELAY_US}. Binary KServe
  requests, 1/2/4/8/16 keep-alive clients (build/bench/http_client), in
  slices alternating off / on at each level: requests/s, p50, p99, and from
  the stats endpoint the requests per execution of `<w>_b`. Goals: on/off
  requests/s >= 1.2 at 16 clients; on/off p50 at 1 client <= 1.05 (noise).

MAX_BATCH 8 = the top level's 16 clients / the daemon's 2 workers: one
group per worker (16 would serialize the whole load on one worker's run
while the other waits). DELAY_US 300: a group waits at most that long for
requests another worker is bringing (batch.c never holds a worker for
requests still queued), so the value only bounds the low-load case.
BENCH_ONLY=batching selects these rows alone (row 12).
"""
import json
import os
import shutil

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "batching"                      # its BENCH_ONLY name
WORKLOADS = {"tiny": (1, 4, 4, 8), "audio_up": (1, 128, 256)}
LEVELS = (1, 2, 4, 8, 16)
MAX_BATCH = 8
DELAY_US = 300


def settings(quick):
    if quick:
        return dict(batch_slice_s=0.5, batch_slices=2)
    return dict(batch_slice_s=1.0, batch_slices=3)


def make_models(workdir):
    mdir = os.path.join(workdir, "batch_models")
    shutil.rmtree(mdir, ignore_errors=True)
    os.makedirs(mdir)
    for w in WORKLOADS:
        with open(os.path.join(HERE, "models", w + ".json")) as f:
            doc = json.load(f)
        with open(os.path.join(mdir, w + ".json"), "w") as f:
            json.dump(doc, f)
        doc["config"]["name"] = w + "_b"
        doc["dynamic_batching"] = {"max_batch": MAX_BATCH, "max_queue_delay_us": DELAY_US}
        with open(os.path.join(mdir, w + "_b.json"), "w") as f:
            json.dump(doc, f)
    return mdir


def make_body(rb, workdir, w, shape):
    x = np.random.default_rng(5).uniform(-1, 1, shape).astype("<f4")
    path = os.path.join(workdir, f"batch_{w}.body")
    return path, rb.binary_headers(rb.write_binary_body(path, x))


def counts(rb, d, model):
    st, _, b = rb.http_req(d.port, "GET", f"/v2/models/{model}/stats")
    if st != 200:
        raise RuntimeError(f"stats of {model}: {st}")
    s = json.loads(b)["model_stats"][0]
    return int(s["inference_count"]), int(s["execution_count"])


def check_same(rb, d, w, body, hl):
    """The batched model's answer equals the plain one's (same seeded weights)."""
    data = open(body, "rb").read()
    hdr = {"Inference-Header-Content-Length": hl.split(": ")[1],
           "Content-Type": "application/octet-stream"}
    ys = []
    for m in (w, w + "_b"):
        st, h, out = rb.http_req(d.port, "POST", f"/v2/models/{m}/infer", data, hdr)
        if st != 200:
            raise RuntimeError(f"{m}: {st} {out[:200]}")
        ys.append(rb.binary_output(h, out))
    return bool(ys[0].shape == ys[1].shape and np.array_equal(ys[0], ys[1]))


def run(bench, rb):
    r = bench.r.setdefault("batching", {"max_batch": MAX_BATCH, "max_queue_delay_us": DELAY_US})
    bench.s.update(settings(bench.quick))
    s = bench.s
    mdir = make_models(bench.work)
    with bench.phase("12a_batch_daemon_start"):
        d = rb.Daemon(bench.build, bench.work, mdir, "batching")
        r["daemon"] = {"workers": d.workers, "threads_per_request": d.tpr}
    try:
        for w, shape in WORKLOADS.items():
            body, hdrs = make_body(rb, bench.work, w, shape)
            out_bytes = int(np.prod(shape)) * 4      # at least the input's size comes back
            x = r.setdefault("workloads", {}).setdefault(w, {"levels": {}})
            x["same_answer"] = check_same(rb, d, w, body, hdrs[0])
            with bench.phase(f"12b_batch_{w}"):
                for c in LEVELS:
                    parts = {"off": [], "on": []}
                    i0, e0 = counts(rb, d, w + "_b")
                    for i in range(s["batch_slices"]):
                        order = ("off", "on") if i % 2 == 0 else ("on", "off")
                        for mode in order:
                            m = w if mode == "off" else w + "_b"
                            parts[mode].append(bench.client(
                                d.url(f"/v2/models/{m}/infer"), body, hdrs,
                                d=s["batch_slice_s"], c=c, warm=2, minbytes=out_bytes,
                                tag=f"batch {m} c={c}", lat=True, server=d))
                    i1, e1 = counts(rb, d, w + "_b")
                    lv = x["levels"][str(c)] = {k: bench.merge(v) for k, v in parts.items()}
                    lv["on_items_per_execution"] = (i1 - i0) / max(e1 - e0, 1)
                    rb.log(f"  batching {w} c={c}: off {lv['off']['rps']:.0f} req/s, on "
                           f"{lv['on']['rps']:.0f} req/s ({lv['on_items_per_execution']:.2f} "
                           "items per execution)")
    finally:
        d.stop()


# ---------------------------------------------------------------- analysis, report

def analyse(r, a, goals):
    b = r.get("batching")
    if not b:
        return
    a["batching"] = {}
    for w, x in b.get("workloads", {}).items():
        for c, lv in x["levels"].items():
            off, on = lv["off"], lv["on"]
            a["batching"][f"{w} c={c}"] = {
                "rps": on["rps"] / off["rps"] if off["rps"] else None,
                "p50": (on["latency"]["median_s"] / off["latency"]["median_s"]
                        if off["latency"]["median_s"] else None),
                "p99": (on["latency"]["p99_s"] / off["latency"]["p99_s"]
                        if off["latency"]["p99_s"] else None)}
        goals.append((f"12 batching {w}: answer equal to batching off", 1.0 if x["same_answer"] else 0.0,
                      "equal", bool(x["same_answer"])))
        v = a["batching"].get(f"{w} c=16", {}).get("rps")
        if v is not None:
            goals.append((f"12 batching {w} 16 clients on/off req/s", v, ">= 1.2", v >= 1.2))
        v = a["batching"].get(f"{w} c=1", {}).get("p50")
        if v is not None:
            goals.append((f"12 batching {w} 1 client on/off p50", v, "<= 1.05", v <= 1.05))


def table(r, a, q):
    b = r.get("batching")
    if not b:
        return []
    dm = b.get("daemon", {})
    L = ["## 12. Dynamic batching (issue 14): tiny and audio_up, binary", "",
         f"One daemon ({dm.get('workers')} workers × {dm.get('threads_per_request')} threads) serves each "
         f"workload as is (off) and with `\"dynamic_batching\": {{\"max_batch\": {b['max_batch']}, "
         f"\"max_queue_delay_us\": {b['max_queue_delay_us']}}}` (on), slices alternating; "
         "items per execution from the stats endpoint (inference_count / execution_count).", "",
         "| workload | clients | off req/s | off p50 ms | off p99 ms | on req/s | on p50 ms | on p99 ms | "
         "on/off req/s | on/off p50 | on/off p99 | items per execution |",
         "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for w, x in b.get("workloads", {}).items():
        for c, lv in x["levels"].items():
            off, on = lv["off"], lv["on"]
            ra = a.get("batching", {}).get(f"{w} c={c}", {})
            L.append(f"| {w} | {c} | {q(off['rps'], 1)} | {q(off['latency']['median_s']*1e3, 3)} | "
                     f"{q(off['latency']['p99_s']*1e3, 3)} | {q(on['rps'], 1)} | "
                     f"{q(on['latency']['median_s']*1e3, 3)} | {q(on['latency']['p99_s']*1e3, 3)} | "
                     f"**{q(ra.get('rps'), 3)}** | {q(ra.get('p50'), 3)} | {q(ra.get('p99'), 3)} | "
                     f"{q(lv['on_items_per_execution'], 2)} |")
    L.append("")
    L.append("`tiny` requests are computed on the loop thread (below `inline_max_work`) unless a group of "
             "their model is forming, so they rarely meet (items per execution near 1); a batch saves only "
             "what an execution costs beyond its items' compute.")
    L.append("")
    return L
