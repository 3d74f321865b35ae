#!/usr/bin/python3
"""Peer for the bench: the dcgan_up layer served by Flask + PyTorch.

The same Keras Conv2DTranspose (kernel 4, stride 2, padding "same", relu) as
deconvd's bench model, computed with torch.nn.ConvTranspose2d, behind the
same KServe v2 request/response formats deconvd speaks, so the bench sends
byte-identical requests to both:

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
"""
import argparse
import json
import logging

import numpy as np
import torch
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--bias", required=True)
    ap.add_argument("--in-size", type=int, default=32)
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="dcgan_up")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    infer = build(args)
    app = Flask("peer")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    @app.get("/v2/health/ready")
    def ready():
        return Response('{"ready":true}', mimetype="application/json")

    @app.post("/v2/models/<name>/infer")
    def infer_route(name):
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

    class Handler(WSGIRequestHandler):
        protocol_version = "HTTP/1.1"      # keep-alive, like the C client expects

    app.run(host="127.0.0.1", port=args.port, threaded=True, request_handler=Handler)


if __name__ == "__main__":
    main()
