# shellcheck shell=sh
# lib.sh — helpers for the tests/packaging shell tests (sourced, POSIX sh).
# Sets ROOT (repository root, also the cwd), BIN (the daemon) and TMP (removed
# on exit, with every daemon started through start_daemon killed).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
BIN=${DECONVD_BIN:-build/deconvd}
case "$BIN" in /*) ;; *) BIN=$ROOT/$BIN ;; esac
TMP=$(mktemp -d "${TMPDIR:-/tmp}/deconvd-pkgtest.XXXXXX") || exit 1
# A skipped test exits 77 (tests/packaging/run counts it apart).

lib_cleanup() {
    for f in "$TMP"/*.pid; do
        [ -f "$f" ] || continue
        kill "$(cat "$f")" 2>/dev/null
    done
    sleep 0.2
    for f in "$TMP"/*.pid; do
        [ -f "$f" ] || continue
        kill -9 "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap lib_cleanup EXIT
trap 'exit 130' INT TERM

need_bin() {
    [ -x "$BIN" ] || { echo "FAIL - $BIN is not built (make all)"; exit 1; }
}

# start_daemon NAME: starts the daemon on 127.0.0.1 with an ephemeral port
# and a private copy of config/models; waits (bounded) until it is ready.
# Prints the port. Files: $TMP/NAME.pid, $TMP/NAME.log, $TMP/NAME/.
start_daemon() {
    name=$1
    mkdir -p "$TMP/$name" && cp -R config/models "$TMP/$name/models" || return 1
    printf '{"listen":"127.0.0.1:0","models_dir":"%s","workers":1,"threads_per_request":1,"drain_timeout_ms":5000}\n' \
        "$TMP/$name/models" >"$TMP/$name/deconvd.json"
    rm -f "$TMP/$name.rc"
    # A wrapper keeps the exit status (in NAME.rc) readable from any subshell.
    (
        "$BIN" --config "$TMP/$name/deconvd.json" </dev/null >"$TMP/$name.log" 2>&1 &
        echo $! >"$TMP/$name.pid"
        wait $!
        echo $? >"$TMP/$name.rc"
    ) </dev/null >/dev/null 2>&1 &
    i=0
    until [ -s "$TMP/$name.pid" ]; do
        i=$((i + 1)); [ "$i" -lt 100 ] || return 1; sleep 0.05
    done
    i=0 port=""
    while [ -z "$port" ]; do
        port=$(sed -n 's/.*msg=listening .*port=\([0-9][0-9]*\).*/\1/p' "$TMP/$name.log" | head -n1)
        [ -n "$port" ] && break
        i=$((i + 1))
        if [ "$i" -ge 100 ] || ! kill -0 "$(cat "$TMP/$name.pid")" 2>/dev/null; then
            echo "start_daemon $name: no msg=listening" >&2; tail -n 20 "$TMP/$name.log" >&2; return 1
        fi
        sleep 0.1
    done
    i=0
    until curl -fsS -m 2 "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null | grep -q '"ready": *true'; do
        i=$((i + 1))
        if [ "$i" -ge 200 ]; then
            echo "start_daemon $name: not ready after 20 s" >&2; tail -n 20 "$TMP/$name.log" >&2; return 1
        fi
        sleep 0.1
    done
    echo "$port"
}

# stop_daemon NAME: SIGTERM, wait (bounded: 30 s), print the exit status.
stop_daemon() {
    pid=$(cat "$TMP/$1.pid") || return 1
    kill -TERM "$pid" 2>/dev/null
    i=0
    until [ -s "$TMP/$1.rc" ]; do
        i=$((i + 1))
        if [ "$i" -ge 300 ]; then
            kill -9 "$pid" 2>/dev/null; echo "stop_daemon $1: still running after 30 s" >&2
            echo timeout; return 1
        fi
        sleep 0.1
    done
    rm -f "$TMP/$1.pid"
    cat "$TMP/$1.rc"
}
