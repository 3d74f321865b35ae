#!/bin/sh
# Scale-out: two daemons on ephemeral loopback ports behind nginx (Debian's
# nginx, run in the foreground with a private prefix and config). Clients keep
# sending inference requests through nginx while one replica is drained with
# SIGTERM; every request must succeed with the right answer, the drained
# replica must exit 0, and the other must carry the traffic afterwards: each
# request after the drain ends on it with 200, whatever nginx tried first
# (once fail_timeout has passed nginx tries the drained replica again, fails
# to connect and moves on: the client still gets its 200, so that is not
# counted against it). Prints its figures as "figure - scaleout: ..." lines
# (docs/deployment.md quotes them). Skipped (77) without nginx (Debian
# package: nginx).
# shellcheck disable=SC2015   # "A && ok || bad": ok always succeeds
. "$(dirname "$0")/lib.sh"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
if [ ! -x "$NGINX" ]; then
    echo "skip - nginx not found (Debian package: nginx)"
    exit 77
fi
need_bin
CLIENTS=4            # concurrent client loops
BEFORE=80            # requests answered before the drain starts
AFTER=120            # requests answered after the drained replica exited
MAX_PER_CLIENT=2000  # hard bound on each loop
# nginx's fail_timeout: how long a failed replica is left alone. A short one
# (SCALEOUT_FAIL_TIMEOUT=1s) makes nginx try the drained replica again during
# the run, as a loaded machine's slower run does with the default.
FAIL_TIMEOUT=${SCALEOUT_FAIL_TIMEOUT:-10s}
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }

pa=$(start_daemon a) || exit 1
pb=$(start_daemon b) || exit 1
echo "replicas: a on 127.0.0.1:$pa, b on 127.0.0.1:$pb"

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

N=$TMP/nginx
mkdir -p "$N/tmp"
user=""
if [ "$(id -u)" = 0 ]; then
    # nginx's workers drop to nobody: let them reach their temp directories.
    user="user nobody nogroup;"
    chmod 711 "$TMP" && chown nobody "$N/tmp"
fi
tries=0
while :; do
    pn=$(free_port)
    cat >"$N/nginx.conf" <<CONF
$user
worker_processes 1;
daemon off;
pid $N/nginx.pid;
error_log $N/error.log info;
events { worker_connections 256; }
http {
    log_format up '\$status \$upstream_addr \$upstream_status';
    access_log $N/access.log up;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    upstream deconvd {
        server 127.0.0.1:$pa max_fails=1 fail_timeout=$FAIL_TIMEOUT;
        server 127.0.0.1:$pb max_fails=1 fail_timeout=$FAIL_TIMEOUT;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$pn;
        location / {
            proxy_pass http://deconvd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 30s;
            # Inference is a pure function, so retrying a POST is safe.
            proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
            proxy_next_upstream_tries 2;
            proxy_next_upstream_timeout 10s;
        }
    }
}
CONF
    "$NGINX" -p "$N" -e "$N/error.log" -c "$N/nginx.conf" </dev/null >"$N/stdout" 2>&1 &
    echo $! >"$TMP/nginx.pid"
    i=0
    until curl -fsS -m 1 "http://127.0.0.1:$pn/v2/health/ready" >/dev/null 2>&1; do
        i=$((i + 1)); kill -0 "$(cat "$TMP/nginx.pid")" 2>/dev/null || break
        [ "$i" -lt 50 ] || break
        sleep 0.1
    done
    curl -fsS -m 1 "http://127.0.0.1:$pn/v2/health/ready" >/dev/null 2>&1 && break
    kill "$(cat "$TMP/nginx.pid")" 2>/dev/null; rm -f "$TMP/nginx.pid"
    tries=$((tries + 1))
    [ "$tries" -lt 3 ] || { bad "nginx did not start"; tail -n 5 "$N/error.log"; exit 1; }
done
echo "nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') on 127.0.0.1:$pn"

REQ='{"inputs":[{"name":"input","shape":[1,2,2],"datatype":"FP32","data":[1,2,3,4]}]}'
client() {   # client ID: appends one line per request to $TMP/results.ID
    n=0
    while [ ! -e "$TMP/stop" ] && [ "$n" -lt "$MAX_PER_CLIENT" ]; do
        n=$((n + 1))
        code=$(curl -sS -m 15 -o "$TMP/body.$1" -w '%{http_code}' \
                    -H 'Content-Type: application/json' --data-binary "$REQ" \
                    "http://127.0.0.1:$pn/v2/models/up1d/infer" 2>"$TMP/err.$1")
        if [ "$code" = 200 ] && tr -d ' \n' <"$TMP/body.$1" | grep -q '"data":\[2.5,0.5,5.75,2.5\]'; then
            echo ok >>"$TMP/results.$1"
        else
            echo "fail HTTP $code $(head -c 200 "$TMP/body.$1") $(cat "$TMP/err.$1")" >>"$TMP/results.$1"
        fi
    done
}
count() { cat "$TMP"/results.* 2>/dev/null | wc -l; }
wait_count() {   # wait_count N: until N results in total (bounded: 60 s)
    i=0
    while [ "$(count)" -lt "$1" ]; do
        i=$((i + 1)); [ "$i" -lt 600 ] || return 1; sleep 0.1
    done
}

c=1 clients=""
while [ "$c" -le "$CLIENTS" ]; do client "$c" & clients="$clients $!"; c=$((c + 1)); done
wait_count "$BEFORE" || bad "only $(count) requests in 60 s before the drain"
before=$(count)
t0=$(date +%s%N)
rc=$(stop_daemon a)
t1=$(date +%s%N)
at_exit=$(count)
echo "figure - scaleout: drain of replica a (SIGTERM to exit) = $(( (t1 - t0) / 1000000 )) ms"
echo "figure - scaleout: requests done when the drain began = $before; when a exited = $at_exit"
[ "$rc" = 0 ] && ok "replica a exited 0 after SIGTERM" || bad "replica a exit status $rc"
grep -q 'msg=draining' "$TMP/a.log" && grep -q 'msg=drained' "$TMP/a.log" &&
    ok "replica a logged msg=draining and msg=drained" || bad "no drain lines in a's log"
wait_count $((at_exit + AFTER)) || bad "only $(count) requests in 60 s after the drain"
touch "$TMP/stop"
# shellcheck disable=SC2086
wait $clients    # bounded by MAX_PER_CLIENT and curl -m

total=$(count)
fails=$(cat "$TMP"/results.* | grep -c -v '^ok$')
if [ "$fails" -eq 0 ]; then ok "$total requests through nginx, 0 failures"
else bad "$fails of $total requests failed:"; cat "$TMP"/results.* | grep -v '^ok$' | sort | uniq -c | head -n 5; fi
served_a=$(grep -c " 127.0.0.1:$pa" "$N/access.log")
served_b=$(grep -c " 127.0.0.1:$pb" "$N/access.log")
retried=$(grep -c ', 127.0.0.1:' "$N/access.log")
echo "figure - scaleout: requests through nginx = $total, failed = $fails"
echo "figure - scaleout: answered by a = $served_a, by b = $served_b, retried on the other replica = $retried"
[ "$served_a" -gt 0 ] && [ "$served_b" -gt 0 ] && ok "both replicas served traffic" ||
    bad "load not spread: a $served_a, b $served_b"
# After a exited, b carried everything: each of the last AFTER requests ended
# on b with 200 (log line: status, upstreams tried, their statuses).
others=$(tail -n "$AFTER" "$N/access.log" | awk -v b="127.0.0.1:$pb" '
    { last_addr = ""; for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+:[0-9]+,?$/) last_addr = $i
      sub(/,$/, "", last_addr)
      if ($1 != 200 || last_addr != b || $NF != 200) print }')
[ -z "$others" ] && ok "after the drain, each request ended on b with 200" ||
    { bad "requests after the drain that did not end on b with 200:"; echo "$others" | head -n 5; }
[ "$(stop_daemon b)" = 0 ] && ok "replica b exited 0" || bad "replica b did not exit 0"
kill "$(cat "$TMP/nginx.pid")" 2>/dev/null

echo "scaleout: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
