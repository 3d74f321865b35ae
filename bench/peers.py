"""Peer rows of the bench (issue 14): deconvd against the servers a user would
compare it with, every workload, 1-16 keep-alive clients, binary and JSON.

Called by run.py (which passes itself as `rb`, for its Daemon, Phases,
client and helpers); one section of the report, "11. Peers":

  servers   deconvd (the shipped defaults), ONNX Runtime on Node.js
            (peer/ort_server.js, onnxruntime-node from npm, as 2 processes x
            1 intra-op thread and 1 x 2), PyTorch with OpenBLAS (peer/app.py
            under gunicorn, 2 workers x 1 torch thread, OpenBLAS selected for
            the peer process by LD_LIBRARY_PATH and checked in /proc/PID/maps)
  models    every workload with its weights in .npy files that all servers
            load: single layers (bench/models/*.json plus weights drawn here
            from fixed seeds) and the chains (chain_models.py); the ONNX
            files from them by peer/make_onnx.py (tf2onnx's layout)
  check     each peer's output for one input against deconvd's
            (max |diff| <= 1e-4 * max(1, max |y|)); a mismatch drops that
            peer's cells for the workload, reported as MISMATCH
  sweep     per workload, path (binary, JSON) and client count (1, 2, 4, 8,
            16), slices of every server in rotating order, so drift hits all
            alike; build/bench/http_client does the timing
  verdict   per cell and peer: deconvd req/s >= 1.0x the peer's and p50
            <= 1.0x; against ONNX Runtime, its better split by req/s in that
            cell; audio_up binary at 8 clients >= 1.3x
"""
import json
import os
import shutil
import subprocess
import time

import numpy as np

import chainbench

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer")
SINGLE = ("dcgan_up", "tiny", "audio_up", "vol_up")
WORKLOADS = SINGLE + tuple(chainbench.CHAINS)
OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread"
ORT_SPLITS = ((2, 1), (1, 2))                     # processes x intra-op threads
TORCH_SPLIT = (2, 1)                              # gunicorn workers x torch threads
GOAL_AUDIO = 1.3


def settings(quick):
    if quick:
        return dict(peer_levels=(1, 8), peer_slices=1, peer_slice_s=0.5)
    # about 8 minutes here: the slow cells (a peer at a few JSON requests/s,
    # 16 clients) last as long as their requests whatever the slice
    return dict(peer_levels=(1, 2, 4, 8, 16), peer_slices=2, peer_slice_s=0.5)


# ---------------------------------------------------------------- models, bodies

def make_models(workdir, names):
    """One models directory for every server: each single-layer workload
    with .npy weights (Glorot-uniform kernel, bias in +-0.05, fixed seeds),
    and the chains as chain_models.py writes them."""
    mdir = os.path.join(workdir, "peer_models")
    shutil.rmtree(mdir, ignore_errors=True)
    os.makedirs(mdir)
    for i, n in enumerate(w for w in SINGLE if w in names):
        with open(os.path.join(HERE, "models", n + ".json")) as f:
            m = json.load(f)
        c = m["config"]
        cin = c["batch_input_shape"][-1]
        k = list(c["kernel_size"])
        rng = np.random.default_rng(4000 + i)
        fan = int(np.prod(k))
        lim = np.sqrt(6.0 / (fan * cin + fan * c["filters"]))
        np.save(os.path.join(mdir, f"{n}.kernel.npy"),
                rng.uniform(-lim, lim, k + [c["filters"], cin]).astype("<f4"))
        np.save(os.path.join(mdir, f"{n}.bias.npy"), rng.uniform(-0.05, 0.05, (c["filters"],)).astype("<f4"))
        m["weights"] = {"kernel": f"{n}.kernel.npy", "bias": f"{n}.bias.npy"}
        with open(os.path.join(mdir, n + ".json"), "w") as f:
            json.dump(m, f, indent=1)
    chains = [n for n in chainbench.CHAINS if n in names]
    if chains:
        cdir = chainbench.make_models(workdir)
        for fn in os.listdir(cdir):
            if any(fn == n + ".json" or fn.startswith(n + ".") for n in chains):
                shutil.copy(os.path.join(cdir, fn), mdir)
    return mdir


def in_shape(mdir, name):
    with open(os.path.join(mdir, name + ".json")) as f:
        m = json.load(f)
    if m["class_name"] == "Sequential":
        return [1] + m["config"]["layers"][0]["config"]["batch_shape"][1:]
    return [1] + m["config"]["batch_input_shape"][1:]


def make_bodies(rb, workdir, name, shape, input_name):
    """The binary and JSON requests (JSON as a Python client sends float32:
    tolist(), each value's shortest text as a double)."""
    x = np.random.default_rng(11).uniform(-1, 1, shape).astype("<f4")
    b = {"x": x, "bin": os.path.join(workdir, f"peer_{name}_bin.body"),
         "json": os.path.join(workdir, f"peer_{name}_json.body")}
    b["bin_hl"] = rb.write_binary_body(b["bin"], x, input_name)
    rb.write_json_body(b["json"], x, input_name)
    b["headers"] = {"binary": rb.binary_headers(b["bin_hl"]),
                    "json": ["Content-Type: application/json"]}
    return b


# ---------------------------------------------------------------- peers

class Server:
    """A peer process listening on 127.0.0.1:port; CPU counted with its
    direct children (cluster workers, gunicorn workers)."""
    label = "?"

    def setup(self, rb, workdir, key, label):
        """Its name, a free port and its log file, before it is spawned."""
        self.rb, self.key, self.label = rb, key, label
        self.port = rb.free_port()
        self.logpath = os.path.join(workdir, f"{key}.log")

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu(self):
        return self.rb.proc_cpu(self.p.pid, children=True)

    def pids(self):
        out = [self.p.pid]
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        x = f.read()
                    if int(x[x.rfind(")") + 2:].split()[1]) == self.p.pid:
                        out.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return out

    def mem_kb(self):
        return sum(self.rb.proc_status(p).get("VmRSS", 0) for p in self.pids())

    def tail(self, n=5):
        return self.rb.log_tail(self.logpath, n)

    def stop(self):
        self.rb.stop(self.p)


class Ort(Server):
    def __init__(self, rb, workdir, onnx, procs, threads):
        self.procs, self.threads = procs, threads
        self.setup(rb, workdir, f"ort_{procs}x{threads}", f"ONNX Runtime {procs}×{threads}")
        argv = ["node", os.path.join(PEER, "ort_server.js"), "--port", str(self.port), "--procs", str(procs),
                "--threads", str(threads)] + [f"{n}={p}" for n, p in onnx.items()]
        self.p = rb.spawn(argv, stdout=subprocess.DEVNULL, stderr=open(self.logpath, "w"), cwd=PEER)
        self.ready_s = rb.wait_ready(self.port, self.p, timeout=120)
        # ready answers as soon as one process listens: wait for all of them
        t0 = time.time()
        while "ort_server: listening" not in open(self.logpath).read():
            if self.p.poll() is not None or time.time() - t0 > 120:
                raise RuntimeError(f"{self.label} did not start: {self.tail()}")
            time.sleep(0.05)


class Torch(Server):
    def __init__(self, rb, workdir, models, workers, threads):
        self.workers, self.threads = workers, threads
        self.setup(rb, workdir, f"torch_{workers}x{threads}", f"PyTorch+OpenBLAS {workers}×{threads}")
        env = dict(os.environ, DCV_PEER_ARGS=json.dumps(["--threads", str(threads)] +
                                                       [a for m in models for a in ("--model", m)]),
                   LD_LIBRARY_PATH=OPENBLAS + (":" + os.environ["LD_LIBRARY_PATH"]
                                               if os.environ.get("LD_LIBRARY_PATH") else ""),
                   OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
        # gthread: keep-alive connections (the sync worker closes each one);
        # 4 threads a worker so idle keep-alive clients do not hold up others
        argv = ["/usr/bin/python3", "-m", "gunicorn", "--chdir", PEER, "-b", f"127.0.0.1:{self.port}",
                "-w", str(workers), "-k", "gthread", "--threads", "4", "--keep-alive", "60",
                "--timeout", "300", "--log-level", "warning", "app:gunicorn_app()"]
        self.p = rb.spawn(argv, stdout=subprocess.DEVNULL, stderr=open(self.logpath, "w"), env=env)
        self.ready_s = rb.wait_ready(self.port, self.p, timeout=180)
        # every worker builds its models before it accepts: wait for all
        t0 = time.time()
        while len(self.pids()) < workers + 1 or not all(self.blas(p) for p in self.pids()[1:]):
            if self.p.poll() is not None or time.time() - t0 > 60:
                raise RuntimeError(f"{self.label}: workers did not come up: {self.tail()}")
            time.sleep(0.1)

    @staticmethod
    def blas(pid):
        """The BLAS libraries mapped in process pid."""
        try:
            with open(f"/proc/{pid}/maps") as f:
                return sorted({l.split()[-1] for l in f if "blas" in l.split()[-1]})
        except OSError:
            return []


def which_versions():
    out = {}
    try:
        with open(os.path.join(PEER, "node_modules", "onnxruntime-node", "package.json")) as f:
            out["onnxruntime-node"] = json.load(f)["version"]
    except (OSError, ValueError):
        pass
    for pkg in ("python3-torch", "python3-onnx", "python3-gunicorn", "libopenblas0-pthread", "nodejs"):
        try:
            out[pkg] = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                                      text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            out[pkg] = None
    try:
        out["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["node"] = None
    return out


def start_peers(bench, rb, r, mdir, names):
    """The peers that can start; r["servers"][key] says why one did not."""
    peers = []
    onnx_dir = os.path.join(bench.work, "peer_onnx")
    files = [os.path.join(mdir, n + ".json") for n in names]
    res = subprocess.run(["/usr/bin/python3", os.path.join(PEER, "make_onnx.py"), onnx_dir] + files,
                         capture_output=True, text=True, timeout=300)
    if res.returncode:
        why = f"make_onnx.py failed: {(res.stderr or res.stdout).strip()[-300:]}"
        for p, t in ORT_SPLITS:
            r["servers"][f"ort_{p}x{t}"] = {"skipped": why}
    elif not os.path.isdir(os.path.join(PEER, "node_modules", "onnxruntime-node")) or not shutil.which("node"):
        for p, t in ORT_SPLITS:
            r["servers"][f"ort_{p}x{t}"] = {"skipped": "node or onnxruntime-node missing (bench/install-deps)"}
    else:
        onnx = {n: os.path.join(onnx_dir, n + ".onnx") for n in names}
        for p, t in ORT_SPLITS:
            key = f"ort_{p}x{t}"
            try:
                s = Ort(rb, bench.work, onnx, p, t)
                peers.append(s)
                r["servers"][key] = {"label": s.label, "ready_s": s.ready_s, "procs": p, "intra_op_threads": t}
            except Exception as e:
                r["servers"][key] = {"skipped": f"could not start: {e}"}
    w, t = TORCH_SPLIT
    key = f"torch_{w}x{t}"
    try:
        s = Torch(rb, bench.work, files, w, t)
        peers.append(s)
        blas = {str(p): Torch.blas(p) for p in s.pids()[1:]}
        r["servers"][key] = {"label": s.label, "ready_s": s.ready_s, "workers": w, "torch_threads": t,
                             "blas_mapped": blas,
                             "openblas": all(any("openblas" in x for x in v) for v in blas.values())}
        if not r["servers"][key]["openblas"]:
            rb.log(f"peers: {s.label} did not map OpenBLAS: {blas}")
    except Exception as e:
        r["servers"][key] = {"skipped": f"could not start: {e}"}
    return peers


# ---------------------------------------------------------------- run

def check(rb, d, peer, name, b):
    y1 = chainbench.infer_bin(rb, d.port, name, b)
    try:
        y2 = chainbench.infer_bin(rb, peer.port, name, b)
    except Exception as e:
        return {"ok": False, "error": str(e)[:300]}
    diff = float(np.max(np.abs(y1.astype(np.float64) - y2))) if y1.shape == y2.shape else None
    ref = float(np.max(np.abs(y1)))
    return {"shape_deconvd": list(y1.shape), "shape_peer": list(y2.shape), "max_abs_diff": diff,
            "max_abs_ref": ref, "ok": diff is not None and diff <= 1e-4 * max(ref, 1.0)}


def sweep(bench, rb, servers, name, b, out_n):
    """{server key: {path: {clients: merged}}}, slices in rotating order.
    No per-slice warm-up (run() warmed every server): a peer at two JSON
    requests/s would spend c/2 s on it in every slice."""
    s = bench.s
    res = {k: {} for k, _ in servers}
    turn = 0
    for path in ("binary", "json"):
        body, hdrs = b["bin" if path == "binary" else "json"], b["headers"][path]
        minb = out_n * 4 if path == "binary" else out_n
        for c in s["peer_levels"]:
            parts = {k: [] for k, _ in servers}
            for i in range(s["peer_slices"]):
                turn += 1
                order = servers[turn % len(servers):] + servers[:turn % len(servers)]
                for key, srv in order:
                    parts[key].append(bench.client(srv.url(f"/v2/models/{name}/infer"), body, hdrs,
                                                   d=s["peer_slice_s"], c=c, warm=0, minbytes=minb,
                                                   tag=f"{name} {key} {path} c={c}", lat=True, server=srv))
            for key in parts:
                res[key].setdefault(path, {})[str(c)] = m = bench.merge(parts[key])
                m.pop("url", None)
            rb.log(f"  {name} {path} c={c}: " + ", ".join(
                f"{k} {res[k][path][str(c)]['rps']:.1f}/s p50 {res[k][path][str(c)]['latency']['median_s']*1e3:.2f} ms"
                for k, _ in servers))
    return res


def run(bench, rb, names):
    """The peer rows for workloads `names` into bench.r["peers"]."""
    bench.s.update(settings(bench.quick))
    r = bench.r.setdefault("peers", {"names": list(names), "servers": {}, "workloads": {}})
    r["levels"] = list(bench.s["peer_levels"])
    r["versions"] = which_versions()
    d, peers = None, []
    try:
        with bench.phase("11a_peers_start"):
            mdir = make_models(bench.work, names)
            # the peers first: their imports and session builds take the CPU for seconds
            peers = start_peers(bench, rb, r, mdir, names)
            d = chainbench.daemon(bench, rb, mdir, "peers", names)
            r["servers"]["deconvd"] = {"label": "deconvd", "workers": d.workers,
                                       "threads_per_request": d.tpr, "ready_s": d.ready_s}
        if d is None:
            return
        for name in names:
            with bench.phase(f"11b_peers_{name}"):
                w = r["workloads"][name] = {}
                shape = in_shape(mdir, name)
                b = make_bodies(rb, bench.work, name, shape, chainbench.input_name(rb, d.port, name))
                y = chainbench.infer_bin(rb, d.port, name, b)
                w["in_shape"], w["out_shape"] = shape, list(y.shape)
                w["check"] = {}
                servers = [("deconvd", d)]
                for p in peers:
                    ck = w["check"][p.key] = check(rb, d, p, name, b)
                    if ck["ok"]:
                        servers.append((p.key, p))
                    else:
                        rb.log(f"peers: {p.label} {name}: output MISMATCH {ck}; its cells are not timed")
                # untimed: every process, connection and code path has run
                # the model once (ORT's first runs size its arena)
                top = max(bench.s["peer_levels"])
                for key, srv in servers:
                    for path, c, n in (("binary", top, 2 * top), ("json", 2, 4)):
                        bench.client(srv.url(f"/v2/models/{name}/infer"), b["bin" if path == "binary" else "json"],
                                     b["headers"][path], n=n, c=c, warm=1, tag=f"{name} {key} warm-up {path}")
                w.update(sweep(bench, rb, servers, name, b, int(y.size)))
        r["memory_kb"] = {"deconvd": d.mem().get("VmRSS")}
        for p in peers:
            r["memory_kb"][p.key] = p.mem_kb()
    finally:
        if d is not None:
            d.stop()
        for p in peers:
            p.stop()


# ---------------------------------------------------------------- analysis, report

def cell(w, key, path, c):
    return w.get(key, {}).get(path, {}).get(str(c))


def best_ort(w, path, c):
    """(key, cell) of the ONNX Runtime split with the higher req/s here."""
    cands = [(f"ort_{p}x{t}", cell(w, f"ort_{p}x{t}", path, c)) for p, t in ORT_SPLITS]
    cands = [x for x in cands if x[1]]
    return max(cands, key=lambda x: x[1]["rps"]) if cands else (None, None)


def verdict(dx, px):
    rps = dx["rps"] / px["rps"] if px["rps"] else None
    p50 = dx["latency"]["median_s"] / px["latency"]["median_s"] if px["latency"]["median_s"] else None
    return rps, p50, rps is not None and p50 is not None and rps >= 1.0 and p50 <= 1.0


def analyse(r, a, goals):
    pr = r.get("peers")
    if not pr:
        return
    torch_key = f"torch_{TORCH_SPLIT[0]}x{TORCH_SPLIT[1]}"
    cells = a["peer_cells"] = []
    for name, w in pr.get("workloads", {}).items():
        for path in ("binary", "json"):
            for c in pr.get("levels", []):
                dx = cell(w, "deconvd", path, c)
                if not dx:
                    continue
                for peer, (key, px) in (("ort", best_ort(w, path, c)), ("torch", (torch_key, cell(w, torch_key, path, c)))):
                    if not px:
                        continue
                    rps, p50, ok = verdict(dx, px)
                    cells.append({"workload": name, "path": path, "clients": c, "peer": peer, "server": key,
                                  "rps_ratio": rps, "p50_ratio": p50, "met": ok})
    for peer, label in (("ort", "ONNX Runtime (better split per cell)"), ("torch", "PyTorch + OpenBLAS")):
        xs = [x for x in cells if x["peer"] == peer]
        if xs:
            n = sum(x["met"] for x in xs)
            goals.append((f"11 deconvd ≥ 1.0× {label} req/s and ≤ 1.0× its p50: cells met of {len(xs)}",
                          float(n), f"= {len(xs)}", n == len(xs)))
        for x in xs:
            if x["workload"] == "audio_up" and x["path"] == "binary" and x["clients"] == 8:
                goals.append((f"11 audio_up binary 8 clients deconvd / {label} req/s", x["rps_ratio"],
                              f">= {GOAL_AUDIO}", x["rps_ratio"] >= GOAL_AUDIO))
    for name, w in pr.get("workloads", {}).items():
        for key, ck in w.get("check", {}).items():
            if not ck.get("ok"):
                goals.append((f"11 {key} output for {name} = deconvd's (1e-4)", 0.0, "match", False))


def table(r, a, q):
    pr = r.get("peers")
    if not pr:
        return []
    sv = pr.get("servers", {})
    L = ["## 11. Peers at 1–16 clients: ONNX Runtime (Node.js) and PyTorch + OpenBLAS", ""]
    v = pr.get("versions", {})
    dm = sv.get("deconvd", {})
    L.append(f"deconvd with its defaults ({dm.get('workers')} workers, threads per request "
             f"{dm.get('threads_per_request')}); ONNX Runtime: onnxruntime-node {v.get('onnxruntime-node')} "
             f"(its bundled CPU build) on Node {v.get('node')}, `peer/ort_server.js`, N processes × M intra-op "
             f"threads; PyTorch {v.get('python3-torch')} under gunicorn {v.get('python3-gunicorn')} (gthread), "
             f"`peer/app.py`, with OpenBLAS {v.get('libopenblas0-pthread')}. Same .npy weights everywhere; "
             "ONNX graphs from `peer/make_onnx.py` (channels-last edges, Transpose around ConvTranspose). "
             "Requests/s and latency from `http_client`, keep-alive, slices alternating servers.")
    L.append("")
    for key, x in sv.items():
        if "skipped" in x:
            L.append(f"- {key}: **skipped**: {x['skipped']}")
        elif key.startswith("torch"):
            maps = sorted({lib for libs in x.get("blas_mapped", {}).values() for lib in libs})
            L.append(f"- {x['label']}: BLAS mapped by its workers (/proc/PID/maps): {', '.join(maps) or 'none'}"
                     f" → {'OpenBLAS' if x.get('openblas') else '**not OpenBLAS**'}")
    chk = [(n, k, c) for n, w in pr.get("workloads", {}).items() for k, c in w.get("check", {}).items()]
    if chk:
        L.append("- outputs vs deconvd's for the same input (max |diff|, bound 1e-4·max(1, max|y|)): " + "; ".join(
            f"{n} {k} {q(c.get('max_abs_diff'), 8) if c.get('ok') else '**MISMATCH** ' + str(c.get('max_abs_diff', c.get('error')))}"
            for n, k, c in chk))
    L.append("")
    L.append("×req/s = deconvd / peer (goal ≥ 1.0; audio_up binary 8 clients ≥ 1.3), ×p50 = deconvd / peer "
             "(goal ≤ 1.0). ONNX Runtime: its better split by req/s in each cell, named.")
    L.append("")
    L.append("| workload | path | clients | deconvd req/s | p50 ms | p99 ms | ORT (split) req/s | p50 ms | p99 ms | ×req/s | ×p50 | vs ORT | PyTorch req/s | p50 ms | p99 ms | ×req/s | ×p50 | vs PyTorch |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    vc = {(x["workload"], x["path"], x["clients"], x["peer"]): x for x in a.get("peer_cells", [])}
    torch_key = f"torch_{TORCH_SPLIT[0]}x{TORCH_SPLIT[1]}"

    def ms(x, k):
        return q(x["latency"][k] * 1e3, 3)
    for name, w in pr.get("workloads", {}).items():
        for path in ("binary", "json"):
            for c in pr.get("levels", []):
                dx = cell(w, "deconvd", path, c)
                if not dx:
                    continue
                row = f"| {name} | {path} | {c} | {q(dx['rps'], 1)} | {ms(dx, 'median_s')} | {ms(dx, 'p99_s')} |"
                for peer, (key, px) in (("ort", best_ort(w, path, c)), ("torch", (torch_key, cell(w, torch_key, path, c)))):
                    if not px:
                        row += " — | — | — | — | — | — |"
                        continue
                    x = vc.get((name, path, c, peer), {})
                    split = f" ({key.split('_')[1].replace('x', '×')})" if peer == "ort" else ""
                    goal = GOAL_AUDIO if (name, path, c) == ("audio_up", "binary", 8) else 1.0
                    met = x.get("met") and x["rps_ratio"] >= goal
                    row += (f" {q(px['rps'], 1)}{split} | {ms(px, 'median_s')} | {ms(px, 'p99_s')} | "
                            f"{q(x.get('rps_ratio'), 2)} | {q(x.get('p50_ratio'), 2)} | {'met' if met else '**NOT met**'} |")
                L.append(row)
    L.append("")
    L.append("Every server, both ONNX Runtime splits included: req/s, p50 ms, and the server's CPU per request "
             "(ms, all its processes; the load client shares the 2 cores):")
    L.append("")
    keys = ["deconvd"] + [f"ort_{p}x{t}" for p, t in ORT_SPLITS] + [torch_key]
    L.append("| workload | path | clients | " + " | ".join(
        f"{sv.get(k, {}).get('label', k)} req/s | p50 | CPU ms/req" for k in keys) + " |")
    L.append("|---|---|---|" + "---|---|---|" * len(keys))
    for name, w in pr.get("workloads", {}).items():
        for path in ("binary", "json"):
            for c in pr.get("levels", []):
                xs = [cell(w, k, path, c) for k in keys]
                if any(xs):
                    L.append(f"| {name} | {path} | {c} | " + " | ".join(
                        f"{q(x['rps'], 1)} | {ms(x, 'median_s')} | {q(x.get('server_cpu_per_req_ms'), 3)}"
                        if x else "— | — | —" for x in xs) + " |")
    mem = pr.get("memory_kb")
    if mem:
        L.append("")
        L.append("Memory after the sweep (VmRSS KiB, all processes of a server): " +
                 ", ".join(f"{k} {v}" for k, v in mem.items()) + ".")
    L.append("")
    return L


def charts(r, a, gp, workdir, results, log):
    """peers_binary.png, peers_json.png: req/s vs clients per workload."""
    pr = r.get("peers")
    if not pr or not pr.get("workloads"):
        return []
    keys = ["deconvd"] + [f"ort_{p}x{t}" for p, t in ORT_SPLITS] + [f"torch_{TORCH_SPLIT[0]}x{TORCH_SPLIT[1]}"]
    labels = {"deconvd": "deconvd"}
    labels.update({k: pr["servers"].get(k, {}).get("label", k) for k in keys[1:]})
    made = []
    names = list(pr["workloads"])
    cols = 3
    rows = (len(names) + cols - 1) // cols
    for path in ("binary", "json"):
        dat = os.path.join(workdir, f"peers_{path}.dat")
        with open(dat, "w") as f:
            for name in names:
                w = pr["workloads"][name]
                f.write(f"# {name}\n")
                for c in pr["levels"]:
                    f.write(f"{c} " + " ".join(f"{cell(w, k, path, c)['rps']:.3f}" if cell(w, k, path, c) else "NaN"
                                               for k in keys) + "\n")
                f.write("\n\n")
        png = os.path.join(results, f"peers_{path}.png")
        s = [f"set terminal pngcairo size {460 * cols},{380 * rows + 60} enhanced font 'DejaVu Sans,10'",
             f"set output '{png}'", "set datafile missing 'NaN'",
             f"set multiplot layout {rows},{cols} title 'deconvd vs peers, KServe {path}: requests/s vs keep-alive clients (log y)'",
             "set logscale x 2", "set logscale y", "set grid", "set xlabel 'clients'", "set ylabel 'req/s'",
             "set key bottom right font ',8'", f"set xrange [0.8:{max(pr['levels']) * 1.25}]"]
        for i, name in enumerate(names):
            s.append(f"set title '{name.replace('_', '-')}'")
            s.append("plot " + ", ".join(f"'{dat}' index {i} using 1:{j + 2} with linespoints lw 2 pt 7 "
                                         f"title '{labels[k]}'" for j, k in enumerate(keys)))
        s.append("unset multiplot")
        spath = os.path.join(workdir, f"peers_{path}.gp")
        with open(spath, "w") as f:
            f.write("\n".join(s) + "\n")
        res = subprocess.run([gp, spath], capture_output=True, text=True, timeout=60)
        if res.returncode == 0:
            made.append(png)
        else:
            log(f"gnuplot peers_{path}: {res.stderr.strip()[:300]}")
    return made
