#!/bin/sh
# Smoke test of a running deconvd that serves the shipped example models
# (config/models: up1d, up2d). Prints one line per check and exits non-zero on
# any mismatch. Needs curl, and jq or python3 for the JSON checks.
#
# Usage: scripts/smoke.sh [BASE_URL]        default http://127.0.0.1:8080
# Env:   DECONVD_TOKEN   sent as "Authorization: Bearer ..." when set
#        SMOKE_TIMEOUT   seconds per request (default 10)
#        SMOKE_JSON      jq or python3: force the JSON checker (default: jq if present)
set -u
BASE=${1:-http://127.0.0.1:8080}
BASE=${BASE%/}
TIMEOUT=${SMOKE_TIMEOUT:-10}
pass=0 fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/deconvd-smoke.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
body=$tmp/body

if [ -n "${SMOKE_JSON:-}" ]; then json_tool=$SMOKE_JSON     # jq or python3, for testing
elif command -v jq >/dev/null 2>&1; then json_tool=jq
elif command -v python3 >/dev/null 2>&1; then json_tool=python3
else echo "smoke: needs jq or python3" >&2; exit 2
fi

ok()  { pass=$((pass + 1)); printf 'ok   - %s\n' "$1"; }
bad() { fail=$((fail + 1)); printf 'FAIL - %s: %s\n' "$1" "$2"; }

# req METHOD PATH [JSON_BODY] -> HTTP status on stdout, response body in $body
req() {
    set -- "$1" "$2" "${3-}"
    if [ -n "${DECONVD_TOKEN:-}" ]; then auth="Authorization: Bearer $DECONVD_TOKEN"
    else auth="X-No-Auth: 1"; fi
    if [ -n "$3" ]; then
        curl -sS -m "$TIMEOUT" -o "$body" -w '%{http_code}' -X "$1" -H "$auth" \
             -H 'Content-Type: application/json' --data-binary "$3" "$BASE$2" 2>"$tmp/err"
    else
        curl -sS -m "$TIMEOUT" -o "$body" -w '%{http_code}' -X "$1" -H "$auth" \
             "$BASE$2" 2>"$tmp/err"
    fi || { : >"$body"; }
}

# json_eq PATH EXPECTED: is the value at PATH (dot-separated keys and array
# indexes, e.g. outputs.0.data) in $body exactly the JSON value EXPECTED?
# EXPECTED "string" instead means: any non-empty string.
json_eq() {
    if [ "$json_tool" = jq ]; then
        jq -e --arg p "$1" --argjson want "$2" \
           '($p | split(".") | map(if test("^[0-9]+$") then tonumber else . end)) as $path
            | getpath($path) as $v
            | if $want == "string" then ($v | type) == "string" and ($v | length) > 0
              else $v == $want end' "$body" >/dev/null 2>&1
    else
        python3 - "$body" "$1" "$2" <<'PY'
import json, sys
try:
    v = json.load(open(sys.argv[1]))
    for k in sys.argv[2].split("."):
        v = v[int(k)] if isinstance(v, list) else v[k]
    want = json.loads(sys.argv[3])
    ok = isinstance(v, str) and v != "" if want == "string" else v == want
except Exception:
    ok = False
sys.exit(0 if ok else 1)
PY
    fi
}

# check NAME STATUS WANT_STATUS [PATH EXPECTED]...
check() {
    name=$1 got=$2 want=$3
    shift 3
    if [ "$got" != "$want" ]; then
        bad "$name" "HTTP $got, want $want $(head -c 200 "$tmp/err" "$body" 2>/dev/null | tr '\n' ' ')"
        return
    fi
    while [ $# -ge 2 ]; do
        if ! json_eq "$1" "$2"; then
            bad "$name" "$1 is not $2 in: $(head -c 300 "$body")"
            return
        fi
        shift 2
    done
    ok "$name"
}

echo "smoke: $BASE (json: $json_tool)"

s=$(req GET /v2/health/live)
check "live: GET /v2/health/live" "$s" 200 live true

s=$(req GET /v2/health/ready)
check "ready: GET /v2/health/ready" "$s" 200 ready true

s=$(req GET /v2/models/up2d)
check "metadata: GET /v2/models/up2d" "$s" 200 name '"up2d"' \
    inputs.0.datatype '"FP32"' inputs.0.shape '[-1,-1,-1,3]' outputs.0.shape '[-1,-1,-1,2]'

s=$(req POST /v2/models/up1d/infer \
    '{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}')
check "infer: up1d [[1,2],[3,4]] -> [2.5,0.5,5.75,2.5]" "$s" 200 model_name '"up1d"' \
    outputs.0.shape '[1,4,1]' outputs.0.data '[2.5,0.5,5.75,2.5]'

s=$(req POST /v2/models/up2d/shape '{"input_shape":[null,8,8,3]}')
check "shape: up2d [null,8,8,3] -> [-1,16,16,2]" "$s" 200 output_shape '[-1,16,16,2]'

# A wrong shape (3 channels for a 2-channel model) must be a 4xx with a JSON error.
s=$(req POST /v2/models/up1d/infer \
    '{"inputs":[{"name":"input","shape":[1,2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}')
case "$s" in
    4??) check "bad request: wrong shape -> HTTP $s with a JSON error" "$s" "$s" error '"string"' ;;
    *)   bad "bad request: wrong shape" "HTTP $s, want 4xx: $(head -c 200 "$body")" ;;
esac

s=$(req GET /metrics)
if [ "$s" = 200 ] && grep -q '^deconvd_requests_total{' "$body"; then
    ok "metrics: GET /metrics has deconvd_requests_total samples"
else
    bad "metrics: GET /metrics" "HTTP $s, no deconvd_requests_total sample"
fi

echo "smoke: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
