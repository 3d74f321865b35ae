#!/bin/sh
# KServe v2 JSON inference with curl + jq against deconvd's example up1d model.
#   examples/curl_jq.sh [BASE_URL]   (default http://127.0.0.1:8080)
# Prints: up1d [1, 4, 1] 2.5 0.5 5.75 2.5
set -eu
base=${1:-http://127.0.0.1:8080}
curl -sS --fail-with-body -m 10 -H 'Content-Type: application/json' \
     -d '{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}' \
     "${base%/}/v2/models/up1d/infer" |
    jq -r '.outputs[0] | "up1d [\(.shape | map(tostring) | join(", "))] \(.data | map(tostring) | join(" "))"'
