#!/usr/bin/env python3
"""KServe v2 JSON inference with `requests` against deconvd's example up1d model.

Usage: python3 examples/python_requests.py [BASE_URL]   (default http://127.0.0.1:8080)
Prints: up1d [1, 4, 1] 2.5 0.5 5.75 2.5
"""
import sys

import requests

base = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080").rstrip("/")
request = {"inputs": [{"name": "input", "shape": [1, 2, 2], "datatype": "FP32",
                       "data": [1, 2, 3, 4]}]}
r = requests.post(f"{base}/v2/models/up1d/infer", json=request, timeout=10)
if r.status_code != 200:
    sys.exit(f"HTTP {r.status_code}: {r.json().get('error', r.text)}")
out = r.json()["outputs"][0]
print("up1d", out["shape"], " ".join(f"{v:g}" for v in out["data"]))
