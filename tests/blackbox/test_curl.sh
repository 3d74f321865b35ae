#!/bin/sh
# test_curl.sh — deconvd with plain curl + jq against the shipped config and
# example models (config/deconvd.json, config/models). POSIX sh.
# Prints one line per check and "N passed, N failed"; exits 0 when all pass.
# Slow mode (DCV_TEST_VALGRIND, DECONVD_WRAPPER, DCV_TEST_SLOW: see dcvtest.py):
# the daemon runs under the wrapper, time limits scale, and under valgrind
# one more check reads its memcheck log.
set -u
cd "$(dirname "$0")/../.."
BIN=${DECONVD_BIN:-build/deconvd}
TMP=$(mktemp -d /tmp/dcvcurl.XXXXXX)
PID=""
pass=0 fail=0
SLOW=1 WRAP="" VGLOG=""

cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then kill -KILL "$PID" 2>/dev/null; fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

ok()   { pass=$((pass + 1)); echo "ok   - $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL - $1${2:+: $2}"; }
# check NAME COMMAND...: runs the command, ok if it exits 0
check() { name=$1; shift; if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name" "$(head -c 400 "$TMP/body" 2>/dev/null)"; fi; }
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit $?; }

# req METHOD PATH [BODY]: body to $TMP/body, status to $TMP/code
req() {
    if [ $# -ge 3 ]; then
        curl -sS --max-time $((5 * SLOW)) -X "$1" -o "$TMP/body" -w '%{http_code}' \
             -H 'Content-Type: application/json' --data-binary "$3" \
             "http://127.0.0.1:$PORT$2" >"$TMP/code" 2>"$TMP/curl.err" || echo 000 >"$TMP/code"
    else
        curl -sS --max-time $((5 * SLOW)) -X "$1" -o "$TMP/body" -w '%{http_code}' \
             "http://127.0.0.1:$PORT$2" >"$TMP/code" 2>"$TMP/curl.err" || echo 000 >"$TMP/code"
    fi
}
code_is() { [ "$(cat "$TMP/code")" = "$1" ]; }
jqe() { jq -e "$1" "$TMP/body"; }

for tool in curl jq; do
    command -v "$tool" >/dev/null 2>&1 || { bad "$tool is installed"; finish; }
done
[ -x "$BIN" ] || { bad "deconvd binary at $BIN"; finish; }

if [ -n "${DECONVD_WRAPPER:-}${DCV_TEST_SLOW:-}" ] ||
   { [ -n "${DCV_TEST_VALGRIND:-}" ] && [ "$DCV_TEST_VALGRIND" != 0 ]; }; then
    setup=$(DECONVD_BIN="$BIN" /usr/bin/python3 tests/blackbox/dcvtest.py \
            --sh-setup test_curl "curl daemon") || { bad "slow-mode set-up"; finish; }
    eval "$setup"
    echo "# slow mode: ${WRAP:-no wrapper}, time limits x$SLOW"
fi

if [ -n "$WRAP" ]; then
    eval "$WRAP \"\$BIN\" --config config/deconvd.json --listen 127.0.0.1:0 --workers 1 2>\"\$TMP/err\" &"
else
    "$BIN" --config config/deconvd.json --listen 127.0.0.1:0 --workers 1 2>"$TMP/err" &
fi
PID=$!

PORT=""
i=0
while [ -z "$PORT" ] && [ $i -lt $((200 * SLOW)) ]; do   # <= 10 s (x SLOW)
    PORT=$(sed -n 's/.*msg=listening.* port=\([0-9][0-9]*\).*/\1/p' "$TMP/err" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05; i=$((i + 1))
done
if [ -z "$PORT" ]; then bad "daemon logs msg=listening with a port" "$(tail -5 "$TMP/err")"; finish; fi
ok "daemon listening on 127.0.0.1:$PORT"

i=0
while [ $i -lt $((200 * SLOW)) ]; do                 # <= 10 s (x SLOW)
    req GET /v2/health/ready
    code_is 200 && break
    sleep 0.05; i=$((i + 1))
done
check "ready: 200 {ready:true}" sh -c "[ \"\$(cat $TMP/code)\" = 200 ] && jq -e '.ready == true' $TMP/body"

req GET /v2/health/live
check "live: 200 {live:true}" sh -c "[ \"\$(cat $TMP/code)\" = 200 ] && jq -e '.live == true' $TMP/body"

req GET /v2/models/up1d
check "metadata up1d: input [-1,-1,2] FP32, output [-1,-1,1]" jqe \
  '.name == "up1d" and .platform == "keras_conv_transpose" and
   .inputs[0] == {"name":"input","datatype":"FP32","shape":[-1,-1,2]} and
   .outputs[0].shape == [-1,-1,1]'

# up1d: Conv1DTranspose 2->1 channels, kernel 3, stride 2, same, linear.
# kernel W[t][0] = (1, 0.5), (2, -1), (0.25, 0); bias 0.5.
# Input x = [[1,2],[3,4]] (n=2). Full signal length (2-1)*2+3 = 5:
#   x0=(1,2): tap0 1+1=2 -> pos0; tap1 2-2=0 -> pos1; tap2 0.25 -> pos2
#   x1=(3,4): tap0 3+2=5 -> pos2; tap1 6-4=2 -> pos3; tap2 0.75 -> pos4
#   full = [2, 0, 5.25, 2, 0.75]; SAME output 2*2=4, pad_before (5-4)//2 = 0
#   -> [2, 0, 5.25, 2] + 0.5 = [2.5, 0.5, 5.75, 2.5], shape [1,4,1]
req POST /v2/models/up1d/infer \
  '{"id":"hand","inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[[[1,2],[3,4]]]}],"outputs":[{"name":"output"}]}'
check "infer up1d: 200" code_is 200
check "infer up1d: envelope (model_name, id, FP32, shape [1,4,1])" jqe \
  '.model_name == "up1d" and .id == "hand" and .outputs[0].name == "output" and
   .outputs[0].datatype == "FP32" and .outputs[0].shape == [1,4,1]'
check "infer up1d: values = hand-computed [2.5, 0.5, 5.75, 2.5]" jqe \
  '[.outputs[0].data, [2.5,0.5,5.75,2.5]] | transpose | length == 4 and
   all(.[0] - .[1] | (if . < 0 then -. else . end) < 1e-5)'

req POST /v2/models/up2d/shape '{"input_shape":[null,32,32,3]}'
check "shape up2d [null,32,32,3] -> [-1,64,64,2]" jqe \
  '.model_name == "up2d" and .input_shape == [-1,32,32,3] and .output_shape == [-1,64,64,2]'

req GET /metrics
check "metrics: 200" code_is 200
check "metrics: requests_total counts the up1d infer" \
  grep -q '^deconvd_requests_total{model="up1d",endpoint="infer",code="200"} 1$' "$TMP/body"
check "metrics: models_loaded 3" grep -q '^deconvd_models_loaded 3$' "$TMP/body"

req POST /v2/models/up1d/infer \
  '{"inputs":[{"name":"input","shape":[1,2,3],"datatype":"FP32","data":[1,2,3,4,5,6]}]}'
check "bad request (3 channels for a 2-channel model): 400" code_is 400
check "bad request: JSON error naming 3 and 2 channels" jqe \
  '(.error | type) == "string" and (.error | test("3")) and (.error | test("2"))'

req GET /v2/models/nosuch
check "unknown model: 404 JSON error" sh -c "[ \"\$(cat $TMP/code)\" = 404 ] && jq -e '.error' $TMP/body"

kill -TERM "$PID"
i=0
while kill -0 "$PID" 2>/dev/null && [ $i -lt $((200 * SLOW)) ]; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$PID" 2>/dev/null; then
    bad "daemon exits within 10 s of SIGTERM"
else
    wait "$PID"; rc=$?
    if [ "$rc" -eq 0 ]; then ok "daemon exits 0 on SIGTERM"; else bad "daemon exits 0 on SIGTERM" "rc=$rc"; fi
fi
PID=""
if [ -n "$VGLOG" ]; then
    if /usr/bin/python3 tests/blackbox/dcvtest.py --valgrind-verdict "curl daemon" "$VGLOG"; then
        pass=$((pass + 1)); else fail=$((fail + 1)); fi
fi
finish
