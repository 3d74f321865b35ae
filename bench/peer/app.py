#!/usr/bin/python3
"""Peer for the bench: deconvd's bench models served by Flask + PyTorch.

The same Keras Conv2DTranspose (kernel 4, stride 2, padding "same", relu) as
deconvd's bench model, computed with torch.nn.ConvTranspose2d, or (--model,
repeatable) whole Keras Sequential decoders read from the same model files
deconvd serves — config plus "weights" naming .npy files (chain_models.py
writes them) — as torch.nn modules the way a PyTorch user writes them
(Linear, BatchNorm in eval mode, LeakyReLU, ConvTranspose2d, no folding),
behind the same KServe v2 request/response formats deconvd speaks, so the
bench sends byte-identical requests to both:

  POST /v2/models/<name>/infer   JSON ("data" lists) or the binary tensor
                                 extension (Inference-Header-Content-Length)
  GET  /v2/health/ready

TensorFlow's SAME padding for a transposed conv pads the full
(in-1)*s+k output by total = k - s (when k > s), pad_before = total // 2,
pad_after = total - pad_before. ConvTranspose2d's `padding=p` crops p from
both sides, so it matches when pad_before == pad_after (k=4, s=2: 1 and 1);
otherwise the layer runs with padding=0 and the output is cropped.

Weights: Keras kernel (kh, kw, filters, in) from a .npy file, torch wants
(in, filters, kh, kw). Loopback only; Werkzeug's threaded server with
HTTP/1.1 keep-alive.

  app.py --port N --kernel K.npy --bias B.npy [--in-size 32] [--stride 2]
         [--threads 2] [--name dcgan_up]
  app.py --port N --model DIR/dcgan_gen.json [--model DIR/vae_decoder.json]
         [--threads 2]           (served as /v2/models/<file stem>/infer)

--model also takes a single Conv1D/2D/3DTranspose layer file with "weights"
(the bench's single-layer workloads). Under gunicorn (one process per worker,
keep-alive with the gthread worker), see gunicorn_app().
"""
import argparse
import json
import logging
import os

import numpy as np
import torch
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler


CONV_T = {"Conv1DTranspose": 1, "Conv2DTranspose": 2, "Conv3DTranspose": 3}


def tf_same_pads(n, k, s):
    out = n * s
    full = (n - 1) * s + k
    total = max(full - out, 0)
    return total // 2, full - out - total // 2, out


def build(args):
    kernel = np.load(args.kernel).astype(np.float32)       # (kh, kw, out, in)
    bias = np.load(args.bias).astype(np.float32)
    kh, kw, cout, cin = kernel.shape
    s = args.stride
    pb, pa, _ = tf_same_pads(args.in_size, kh, s)
    symmetric = pb == pa
    conv = torch.nn.ConvTranspose2d(cin, cout, (kh, kw), stride=s,
                                    padding=pb if symmetric else 0, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
        conv.bias.copy_(torch.from_numpy(bias))
    conv.eval()

    def infer(x):                      # x: (N, H, W, C) float32
        with torch.inference_mode():
            t = torch.from_numpy(x).permute(0, 3, 1, 2)
            y = conv(t)
            if not symmetric:
                n_out_h, n_out_w = x.shape[1] * s, x.shape[2] * s
                y = y[:, :, pb:pb + n_out_h, pb:pb + n_out_w]
            y = torch.relu(y)
            return y.permute(0, 2, 3, 1).contiguous().numpy()
    return infer

# ---------------------------------------------------------------- chains
# Tensors of rank 3-5 run channels-first inside (torch's layout) and are Keras's NHWC at
# the edges and around Reshape, which Keras defines on NHWC order.

ACTS = {"linear": lambda t: t, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def keras_act(spec):
    name = spec if isinstance(spec, str) else spec.get("config", {}).get("name", spec.get("class_name"))
    if name not in ACTS:
        raise SystemExit(f"peer: activation {name!r} not supported")
    return ACTS[name]


def to_keras(t):
    r = t.dim()
    return t.permute(0, *range(2, r), 1) if r >= 3 else t


def from_keras(t):
    r = t.dim()
    return t.permute(0, r - 1, *range(1, r - 1)) if r >= 3 else t


def chain_step(cls, c, w, in_shape):
    """(function on the internal tensor, Keras output shape) for one layer."""
    if cls in ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout"):
        return (lambda t: t), in_shape
    if cls == "Dense":
        lin = torch.nn.Linear(in_shape[-1], c["units"], bias=c["use_bias"])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w["kernel"].T)))
            if c["use_bias"]:
                lin.bias.copy_(torch.from_numpy(w["bias"]))
        act = keras_act(c["activation"])
        return (lambda t: act(lin(t))), in_shape[:-1] + [c["units"]]
    if cls == "BatchNormalization":
        if c.get("axis", -1) not in (-1, len(in_shape) - 1):
            raise SystemExit("peer: BatchNormalization on a non-channel axis")
        n = in_shape[-1]
        bn = (torch.nn.BatchNorm2d if len(in_shape) == 4 else torch.nn.BatchNorm1d)(n, eps=c["epsilon"])
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(w.get("gamma", np.ones(n, np.float32))))
            bn.bias.copy_(torch.from_numpy(w.get("beta", np.zeros(n, np.float32))))
            bn.running_mean.copy_(torch.from_numpy(w.get("moving_mean", np.zeros(n, np.float32))))
            bn.running_var.copy_(torch.from_numpy(w.get("moving_variance", np.ones(n, np.float32))))
        bn.eval()
        return bn, in_shape
    if cls == "LeakyReLU":
        slope = c.get("negative_slope", c.get("alpha", 0.3))
        return (lambda t: torch.nn.functional.leaky_relu(t, slope)), in_shape
    if cls == "ReLU" and not c.get("max_value") and not c.get("threshold") and not c.get("negative_slope"):
        return torch.relu, in_shape
    if cls == "Activation":
        return keras_act(c["activation"]), in_shape
    if cls == "Reshape":
        out = [in_shape[0]] + list(c["target_shape"])
        return (lambda t: from_keras(to_keras(t).reshape([t.shape[0]] + out[1:]))), out
    if cls in CONV_T:
        nd = CONV_T[cls]
        if c.get("data_format", "channels_last") != "channels_last" or c["padding"] != "same" \
                or any(d != 1 for d in c.get("dilation_rate", [1] * nd)) or c.get("output_padding"):
            raise SystemExit(f"peer: {cls}: only channels_last, same, no dilation")
        kernel = w["kernel"]                                   # (k..., out, in)
        k, s, f = list(c["kernel_size"]), list(c["strides"]), c["filters"]
        pads = [tf_same_pads(in_shape[1 + i], k[i], s[i]) for i in range(nd)]
        p = tuple(min(b, a) for b, a, _ in pads)             # torch crops p from both sides
        out_sp = [o for _, _, o in pads]
        conv = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)[nd - 1](
            in_shape[-1], f, tuple(k), stride=tuple(s), padding=p, bias=c["use_bias"])
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(
                kernel.transpose([nd + 1, nd] + list(range(nd))))))
            if c["use_bias"]:
                conv.bias.copy_(torch.from_numpy(w["bias"]))
        conv.eval()
        act = keras_act(c["activation"])
        starts = [b - q for (b, _, _), q in zip(pads, p)]

        def run(t):
            y = conv(t)
            if list(y.shape[2:]) != out_sp:
                y = y[(slice(None), slice(None)) + tuple(slice(a, a + o) for a, o in zip(starts, out_sp))]
            return act(y)
        return run, [in_shape[0]] + out_sp + [f]
    raise SystemExit(f"peer: layer class {cls} not supported")


def build_chain(path):
    """The model file `path`: a Keras Sequential or a single transposed-convolution
    layer, with "weights" naming .npy files."""
    with open(path) as f:
        doc = json.load(f)
    base_dir = os.path.dirname(os.path.abspath(path))

    def load(files):
        return {k: np.load(os.path.join(base_dir, v)).astype(np.float32) for k, v in files.items()}
    steps = []
    if doc["class_name"] in CONV_T:       # one layer: its "weights" name its own files
        c = doc["config"]
        fn, shape = chain_step(doc["class_name"], c, load(doc.get("weights", {})), list(c["batch_input_shape"]))
        steps.append(fn)
    else:
        layers = doc["config"]["layers"]
        if layers[0]["class_name"] != "InputLayer":
            raise SystemExit("peer: the model must start with an InputLayer")
        shape = list(layers[0]["config"]["batch_shape"])
        for l in layers[1:]:
            c = l["config"]
            fn, shape = chain_step(l["class_name"], c, load(doc.get("weights", {}).get(c["name"], {})), shape)
            steps.append(fn)

    def infer(x):                      # x: Keras layout, float32
        with torch.inference_mode():
            t = from_keras(torch.from_numpy(x))
            for fn in steps:
                t = fn(t)
            return to_keras(t).contiguous().numpy()
    return infer


def parse(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kernel")
    ap.add_argument("--bias")
    ap.add_argument("--model", action="append", default=[],
                    help="a Sequential model file (repeatable), served under its stem")
    ap.add_argument("--in-size", type=int, default=32)
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="dcgan_up")
    args = ap.parse_args(argv)
    if not args.model and not (args.kernel and args.bias):
        ap.error("give --kernel and --bias, or --model")
    return args


def make_app(args):
    torch.set_num_threads(args.threads)
    models = {os.path.splitext(os.path.basename(p))[0]: build_chain(p) for p in args.model}
    if args.kernel and args.bias:
        models[args.name] = build(args)
    app = Flask("peer")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    @app.get("/v2/health/ready")
    def ready():
        return Response('{"ready":true}', mimetype="application/json")

    @app.post("/v2/models/<name>/infer")
    def infer_route(name):
        infer = models.get(name, models.get(args.name) if len(models) == 1 else None)
        if infer is None:
            return Response('{"error":"unknown model"}', status=404, mimetype="application/json")
        body = request.get_data()
        hl = request.headers.get("Inference-Header-Content-Length")
        if hl is not None:
            hl = int(hl)
            head = json.loads(body[:hl])
            inp = head["inputs"][0]
            x = np.frombuffer(body, dtype="<f4", offset=hl,
                              count=int(np.prod(inp["shape"]))).reshape(inp["shape"])
        else:
            head = json.loads(body)
            inp = head["inputs"][0]
            x = np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"])
        y = infer(np.ascontiguousarray(x, dtype=np.float32))
        binary = bool(head.get("parameters", {}).get("binary_data_output", False))
        out = {"name": "output", "datatype": "FP32", "shape": list(y.shape)}
        doc = {"model_name": name, "model_version": "1", "outputs": [out]}
        if binary:
            raw = y.astype("<f4").tobytes()
            out["parameters"] = {"binary_data_size": len(raw)}
            js = json.dumps(doc, separators=(",", ":")).encode()
            return Response(js + raw, mimetype="application/octet-stream",
                            headers={"Inference-Header-Content-Length": str(len(js))})
        out["data"] = y.ravel().tolist()
        return Response(json.dumps(doc, separators=(",", ":")), mimetype="application/json")

    return app


def gunicorn_app():
    """For gunicorn ('app:gunicorn_app()'): the arguments, --port aside, as a
    JSON list in DCV_PEER_ARGS; each worker process builds its own models."""
    return make_app(parse(["--port", "0"] + json.loads(os.environ["DCV_PEER_ARGS"])))


def main():
    args = parse()
    app = make_app(args)

    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"      # keep-alive, like the C client expects

    app.run(host="127.0.0.1", port=args.port, threaded=True, request_handler=Handler)


if __name__ == "__main__":
    main()
