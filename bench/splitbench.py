"""Row 13 of the bench (issue 14, goal 2): the split of the cores, swept.

Called by run.py (which passes itself as `rb`, for its Daemon, client and
helpers); also runs alone: `bench/splitbench.py --build build [--quick]`.

Per single-layer workload (dcgan_up, tiny, audio_up, vol_up) and per
concurrency 1, 2, 4, 8, 16 binary keep-alive clients, three daemons side by
side: the fixed splits 2 workers x 1 thread and 1 worker x 2 threads, and
the default (the per-model tuner, src/tuner.c). Each cell is measured in
slices alternating the three daemons (all three stay up; an idle daemon
uses no CPU), so machine noise hits them alike. Per cell: requests/s, p50,
and server CPU per request (utime + stime of the daemon from
/proc/<pid>/stat, over the slice). Verdict per cell: the default within
1.05x of the best fixed split's CPU per request and of its requests/s.
The default's choice (GET /v2/models/{m}/stats, deconvd_split) is
recorded after each cell. Before a level's slices each daemon gets
split_warm_s of that load, untimed: the cells measure sustained load, so
the default's probe of a new load level (under 0.5 s, then again every
10 s) is not in them; the CPU it costs is in the tuner's design (a probe
runs each split for a 60 ms window or two) and in the default's c=2 cells
when the level changes little.
"""
import json
import os
import sys

import numpy as np

WORKLOADS = {"dcgan_up": (1, 32, 32, 128), "tiny": (1, 4, 4, 8), "audio_up": (1, 128, 256),
             "vol_up": (1, 16, 16, 16, 32)}
LEVELS = (1, 2, 4, 8, 16)
SPLITS = (("2x1", 2, 1), ("1x2", 1, 2), ("default", None, None))
GOAL = 1.05


def settings(quick):
    if quick:
        return dict(split_slice_s=0.6, split_slices=2, split_warm_s=0.4, split_levels=(1, 2, 8))
    return dict(split_slice_s=1.4, split_slices=2, split_warm_s=0.6, split_levels=LEVELS)


def make_body(rb, workdir, name, shape):
    x = np.random.default_rng(11).uniform(-1, 1, shape).astype("<f4")
    path = os.path.join(workdir, f"split_{name}.body")
    return path, rb.binary_headers(rb.write_binary_body(path, x))


def split_of(rb, d, model):
    st, _, b = rb.http_req(d.port, "GET", f"/v2/models/{model}/stats")
    if st != 200:
        return None
    return json.loads(b)["model_stats"][0].get("deconvd_split")


def run(bench, rb):
    """The sweep into bench.r["split"]."""
    s = dict(bench.s, **settings(bench.quick))
    r = bench.r.setdefault("split", {"levels": list(s["split_levels"]), "cells": {}})
    models = bench.models if getattr(bench, "models", None) else rb.make_models(bench.work)[0]
    daemons = {}
    with bench.phase("11_split_start"):
        for key, w, t in SPLITS:
            daemons[key] = rb.Daemon(bench.build, bench.work, models, f"split-{key}", workers=w, tpr=t)
        r["daemons"] = {k: {"workers": d.workers, "threads_per_request": d.tpr} for k, d in daemons.items()}
    try:
        for name, shape in WORKLOADS.items():
            if bench.only and name not in bench.only:
                continue
            body, hdrs = make_body(rb, bench.work, name, shape)
            with bench.phase(f"11_split_{name}"):
                for d in daemons.values():      # plans for both thread counts, weights warm
                    bench.client(d.url(f"/v2/models/{name}/infer"), body, hdrs, n=20, c=2, warm=0,
                                 tag=f"split warm {name}")
                for c in s["split_levels"]:
                    for k, d in daemons.items():    # the load is sustained: see the docstring
                        bench.client(d.url(f"/v2/models/{name}/infer"), body, hdrs, d=s["split_warm_s"],
                                     c=c, warm=0, tag=f"split warm {name} {k} c={c}")
                    parts = {k: [] for k in daemons}
                    for i in range(s["split_slices"]):
                        order = list(daemons) if i % 2 == 0 else list(reversed(list(daemons)))
                        for k in order:
                            d = daemons[k]
                            parts[k].append(bench.client(d.url(f"/v2/models/{name}/infer"), body, hdrs,
                                                         d=s["split_slice_s"], c=c, warm=c,
                                                         tag=f"split {name} {k} c={c}", lat=True,
                                                         server=d))
                    cell = {k: bench.merge(v) for k, v in parts.items()}
                    for k in cell:
                        cell[k].pop("slice_median_s", None)
                    cell["default"]["split"] = split_of(rb, daemons["default"], name)
                    r["cells"][f"{name} c={c}"] = cell
                    sp = cell["default"]["split"] or {}
                    rb.log(f"  split {name} c={c}: " + ", ".join(
                        f"{k} {cell[k]['rps']:.0f}/s {cell[k]['server_cpu_per_req_ms']:.3f} ms cpu"
                        for k in cell) + f" (default chose {sp.get('jobs_at_once')} x "
                        f"{sp.get('threads_per_job')}, {sp.get('state')})")
    finally:
        for d in daemons.values():
            d.stop()


# ---------------------------------------------------------------- analysis, report

def analyse(r, a, goals):
    sp = r.get("split")
    if not sp:
        return
    out = a["split"] = {}
    for cell_name, cell in sp["cells"].items():
        fixed = [cell[k] for k in ("2x1", "1x2") if k in cell and cell[k]["ok"]]
        dft = cell.get("default")
        if not fixed or not dft or not dft["ok"]:
            continue
        best_cpu = min(f["server_cpu_per_req_ms"] for f in fixed)
        best_rps = max(f["rps"] for f in fixed)
        cpu_ratio = dft["server_cpu_per_req_ms"] / best_cpu if best_cpu else None
        rps_ratio = best_rps / dft["rps"] if dft["rps"] else None
        met = cpu_ratio is not None and rps_ratio is not None and cpu_ratio <= GOAL and rps_ratio <= GOAL
        out[cell_name] = {"cpu_over_best": cpu_ratio, "best_rps_over_default": rps_ratio, "met": met}
        goals.append((f"13 split {cell_name}: default CPU/req over best fixed", cpu_ratio,
                      f"<= {GOAL}", cpu_ratio is not None and cpu_ratio <= GOAL))
        goals.append((f"13 split {cell_name}: best fixed req/s over default", rps_ratio,
                      f"<= {GOAL}", rps_ratio is not None and rps_ratio <= GOAL))


def table(r, a, q):
    sp = r.get("split")
    if not sp:
        return []
    L = ["## 13. The split of the cores (issue 14, goal 2)", ""]
    dm = sp.get("daemons", {})
    L.append("Binary clients, one daemon per split side by side, slices alternating: "
             + ", ".join(f"{k} = {v['workers']} workers × {v['threads_per_request']} threads"
                         for k, v in dm.items())
             + ". CPU = the daemon's utime + stime per request. Verdict: the default within "
             f"{GOAL}× of the best fixed split's CPU per request and requests/s.")
    L.append("")
    L.append("| workload | clients | 2x1 req/s | 1x2 req/s | default req/s | 2x1 p50 ms | 1x2 p50 ms | "
             "default p50 ms | 2x1 CPU ms/req | 1x2 CPU ms/req | default CPU ms/req | default chose | "
             "CPU / best | best req/s / default | |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for cell_name, cell in sp["cells"].items():
        name, c = cell_name.split(" c=")
        v = a.get("split", {}).get(cell_name, {})
        ch = cell.get("default", {}).get("split") or {}
        chose = f"{ch.get('jobs_at_once')}×{ch.get('threads_per_job')} ({ch.get('state')})" if ch else "?"
        cols = [name, c]
        cols += [q(cell[k]["rps"], 1) if k in cell else "—" for k in ("2x1", "1x2", "default")]
        cols += [q(cell[k]["latency"]["median_s"] * 1e3, 3) if k in cell else "—" for k in ("2x1", "1x2", "default")]
        cols += [q(cell[k]["server_cpu_per_req_ms"], 3) if k in cell else "—" for k in ("2x1", "1x2", "default")]
        cols += [chose, q(v.get("cpu_over_best"), 3), q(v.get("best_rps_over_default"), 3),
                 "met" if v.get("met") else "**NOT met**"]
        L.append("| " + " | ".join(cols) + " |")
    L.append("")
    return L


def main():
    import argparse
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import run as rb
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(here), "build"))
    ap.add_argument("--quick", action="store_true",
                    default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--only", help="comma-separated workloads (default: all four)")
    args = ap.parse_args()
    if args.only:
        for w in list(WORKLOADS):
            if w not in args.only.split(","):
                del WORKLOADS[w]
    bench = rb.Bench(args.build, args.quick)
    bench.r["system"] = bench.system_info()
    run(bench, rb)
    a, goals = {}, []
    analyse(bench.r, a, goals)
    print("\n".join(table(bench.r, a, rb.q)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"r": bench.r, "a": a}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
