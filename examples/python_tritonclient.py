#!/usr/bin/env python3
"""Triton's own HTTP client, unchanged, with binary tensors, against deconvd.

    pip install 'tritonclient[http]'
    python3 examples/python_tritonclient.py [BASE_URL]   (default http://127.0.0.1:8080)
Prints: up1d [1, 4, 1] 2.5 0.5 5.75 2.5
"""
import sys

import numpy as np
import tritonclient.http as httpclient

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
# tritonclient takes host:port; https would be ssl=True.
client = httpclient.InferenceServerClient(url=base.split("://", 1)[-1].rstrip("/"))
if not client.is_model_ready("up1d"):
    sys.exit("up1d is not ready")

x = np.array([[[1, 2], [3, 4]]], dtype=np.float32)      # (batch, width, channels)
inp = httpclient.InferInput("input", list(x.shape), "FP32")
inp.set_data_from_numpy(x, binary_data=True)              # raw little-endian float32
out = httpclient.InferRequestedOutput("output", binary_data=True)
result = client.infer("up1d", inputs=[inp], outputs=[out])
y = result.as_numpy("output")
print("up1d", list(y.shape), " ".join(f"{v:g}" for v in y.ravel()))
