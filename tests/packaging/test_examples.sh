#!/bin/sh
# Runs every client in examples/ against a local daemon and checks that each
# prints the up1d result worked by hand in docs/examples.md. A client whose
# runtime or library is missing is skipped with the package that provides it.
. "$(dirname "$0")/lib.sh"
need_bin
WANT="up1d [1, 4, 1] 2.5 0.5 5.75 2.5"
port=$(start_daemon examples) || exit 1
base=http://127.0.0.1:$port
pass=0 fail=0 skip=0

skip() { skip=$((skip + 1)); echo "skip - $1: $2"; }

run() {   # run NAME CMD...
    name=$1; shift
    out=$(timeout 60 "$@" 2>"$TMP/stderr")
    rc=$?
    last=$(printf '%s\n' "$out" | tail -n 1 | sed 's/[[:space:]]*$//')
    if [ "$rc" -eq 0 ] && [ "$last" = "$WANT" ]; then
        pass=$((pass + 1)); echo "ok   - $name: $last"
    else
        fail=$((fail + 1)); echo "FAIL - $name: exit $rc, printed '$last' (want '$WANT')"
        sed 's/^/       /' "$TMP/stderr" | tail -n 10
    fi
}

PY=/usr/bin/python3
if $PY -c 'import requests' 2>/dev/null; then run python_requests.py $PY examples/python_requests.py "$base"
else skip python_requests.py "python3 has no 'requests' (Debian: python3-requests)"; fi

if $PY -c 'import tritonclient.http, numpy' 2>/dev/null; then
    run python_tritonclient.py $PY examples/python_tritonclient.py "$base"
else
    skip python_tritonclient.py "'import tritonclient' fails: pip install 'tritonclient[http]' (not in Debian)"
fi

if ! command -v Rscript >/dev/null 2>&1; then
    skip r_httr.R "no Rscript (Debian: r-base-core r-cran-httr r-cran-jsonlite)"
elif ! Rscript -e 'library(httr); library(jsonlite)' >/dev/null 2>&1; then
    skip r_httr.R "R lacks httr/jsonlite (Debian: r-cran-httr r-cran-jsonlite)"
else run r_httr.R Rscript examples/r_httr.R "$base"; fi

if command -v node >/dev/null 2>&1 && node -e 'if (typeof fetch !== "function") process.exit(1)' 2>/dev/null
then run node_fetch.mjs node examples/node_fetch.mjs "$base"
else skip node_fetch.mjs "no node with a built-in fetch (Node >= 18; Debian: nodejs)"; fi

if command -v jq >/dev/null 2>&1; then run curl_jq.sh sh examples/curl_jq.sh "$base"
else skip curl_jq.sh "no jq (Debian: jq)"; fi

# Every client also reports a server error instead of printing garbage.
if out=$(timeout 30 sh examples/curl_jq.sh "http://127.0.0.1:$port/v2/nothing-here" 2>&1); then
    fail=$((fail + 1)); echo "FAIL - curl_jq.sh succeeded against a wrong URL: $out"
else pass=$((pass + 1)); echo "ok   - curl_jq.sh fails on a wrong URL"; fi

echo "examples: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
