#!/bin/sh
# systemd/deconvd.service: `systemd-analyze verify` is clean and
# `systemd-analyze security` rates it OK or better (the score goes in
# docs/deployment.md). Skipped (77) without systemd-analyze (Debian: systemd).
# The sd_notify side (READY/RELOADING/STOPPING) is tests/packaging/test_notify.py.
# shellcheck disable=SC2016,SC2181
. "$(dirname "$0")/lib.sh"
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "skip - systemd-analyze not found (Debian package: systemd)"
    exit 77
fi
need_bin
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
unit=systemd/deconvd.service
echo "systemd-analyze: $(systemd-analyze --version | head -n1)"

# verify checks that ExecStart's binary exists and that Documentation=man:
# pages open. Verify the unit as is when deconvd is installed at the unit's
# path; always verify a copy pointing at the built binary, with the man page
# generated into a private MANPATH. Any output (unknown keys...) is a failure.
mkdir -p "$TMP/man/man8"
systemd/gen-manpage.sh "$BIN" test >"$TMP/man/man8/deconvd.8"
exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
if [ -x "$exe" ]; then
    out=$(MANPATH=$TMP/man systemd-analyze verify "$unit" 2>&1)
    if [ $? -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify $unit"
    else bad "systemd-analyze verify $unit: $out"; fi
else
    echo "note - $exe is not installed: verifying a copy whose ExecStart is $BIN"
fi
sed "s|^ExecStart=$exe |ExecStart=$BIN |" "$unit" >"$TMP/deconvd.service"
out=$(MANPATH=$TMP/man systemd-analyze verify "$TMP/deconvd.service" 2>&1)
if [ $? -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify (ExecStart=$BIN)"
else bad "systemd-analyze verify: $out"; fi

# Required settings.
for kv in Type=notify ExecReload='/bin/kill -HUP $MAINPID' Restart=on-failure DynamicUser=yes \
          ProtectSystem=strict ProtectHome=yes PrivateTmp=yes NoNewPrivileges=yes \
          'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' SystemCallFilter=@system-service \
          CapabilityBoundingSet= ProtectKernelTunables=yes ProtectKernelModules=yes \
          ProtectKernelLogs=yes ProtectControlGroups=yes RestrictNamespaces=yes \
          LockPersonality=yes RestrictRealtime=yes PrivateDevices=yes \
          'ExecStart=/usr/local/bin/deconvd --config /etc/deconvd/deconvd.json'; do
    grep -qxF -- "$kv" "$unit" || missing="$missing
      $kv"
done
if [ -z "${missing:-}" ]; then ok "required settings present"; else bad "missing:$missing"; fi
if grep -q '^MemoryDenyWriteExecute' "$unit"; then
    bad "MemoryDenyWriteExecute is set: oneDNN's JIT cannot run under it"
elif grep -q '^#.*MemoryDenyWriteExecute.*NOT set' "$unit"; then
    ok "MemoryDenyWriteExecute not set, and the comment says why"
else bad "no comment explaining why MemoryDenyWriteExecute is not set"; fi

# Exposure: OK or better (systemd's levels: PERFECT < SAFE < OK < MEDIUM < EXPOSED < UNSAFE).
last=$(systemd-analyze security --offline=true "$TMP/deconvd.service" 2>&1 | tail -n 1)
score=$(printf '%s\n' "$last" | sed -n 's/.*: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p')
case "$score" in
    *" PERFECT"|*" SAFE"|*" OK") ok "systemd-analyze security: exposure $score" ;;
    *) bad "systemd-analyze security: '$last' (want OK or better)" ;;
esac
echo "figure - systemd: systemd-analyze security exposure = ${score:-$last}"
# What the two settings the unit leaves out on purpose cost in that score
# (systemd-analyze's weight for each; docs/deployment.md quotes them).
systemd-analyze security --offline=true "$TMP/deconvd.service" 2>&1 |
    awk '$2 ~ /^(MemoryDenyWriteExecute|ProcSubset)=$/ {
        print "figure - systemd: exposure weight of unset " $2 " = " $NF }'

# The system-call filter against what deconvd really calls: strace it through
# start-up, inference on each example model, a SIGHUP reload and a SIGTERM
# drain (with NOTIFY_SOCKET set, so sd_notify's calls are included), then check
# every call against the unit's SystemCallFilter= lines as systemd expands them.
if ! command -v strace >/dev/null 2>&1; then
    echo "note - strace not found: system-call filter not checked against a trace (Debian: strace)"
elif ! strace -f -qq -o /dev/null true 2>/dev/null; then
    echo "note - strace cannot trace here (ptrace refused): system-call filter not checked"
else
    /usr/bin/python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1])' "$TMP/notify.sock"
    mkdir -p "$TMP/st" && cp -R config/models "$TMP/st/models"
    NOTIFY_SOCKET=$TMP/notify.sock strace -f -qq -o "$TMP/trace" "$BIN" --config config/deconvd.json \
        --models "$TMP/st/models" --listen 127.0.0.1:0 --workers 1 --threads-per-request 2 \
        </dev/null >"$TMP/st.log" 2>&1 &
    spid=$!
    i=0 port=""
    while [ -z "$port" ] && [ "$i" -lt 100 ]; do
        sleep 0.1; i=$((i + 1))
        port=$(sed -n 's/.*msg=listening .*port=\([0-9][0-9]*\).*/\1/p' "$TMP/st.log" | head -n1)
    done
    dpid=$(head -n1 "$TMP/trace" | cut -d' ' -f1)    # the traced daemon, not strace
    if [ -n "$port" ] && [ -n "$dpid" ]; then
        i=0
        until curl -fsS -m 2 "http://127.0.0.1:$port/v2/health/ready" 2>/dev/null | grep -q true; do
            i=$((i + 1)); [ "$i" -lt 100 ] || break; sleep 0.1
        done
        scripts/smoke.sh "http://127.0.0.1:$port" >/dev/null
        x=$(/usr/bin/python3 -c 'print(",".join(["0.5"] * 64))')
        curl -sS -m 10 -o /dev/null "http://127.0.0.1:$port/v2/models/gen3d/infer" \
             -d "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,2,2,2,8],\"datatype\":\"FP32\",\"data\":[$x]}]}"
        kill -HUP "$dpid"; sleep 0.5
        kill -TERM "$dpid"
    fi
    i=0
    while kill -0 "$spid" 2>/dev/null && [ "$i" -lt 300 ]; do i=$((i + 1)); sleep 0.1; done
    kill -9 "$spid" 2>/dev/null
    grep -q msg=drained "$TMP/st.log" || bad "traced daemon did not start, serve and drain: $(tail -n 3 "$TMP/st.log")"
    res=$(/usr/bin/python3 - "$TMP/trace" "$unit" <<'PY'
import re, subprocess, sys

def expand(name, seen):
    out = set()
    if not name.startswith("@"):
        return {name}
    text = subprocess.run(["systemd-analyze", "syscall-filter", name],
                          capture_output=True, text=True).stdout
    for line in text.splitlines()[1:]:
        line = line.strip()
        if line and not line.startswith("#") and line not in seen:
            seen.add(line)
            out |= expand(line, seen)
    return out

allow = None
for line in open(sys.argv[2]):
    m = re.match(r"SystemCallFilter=(~?)(.*)", line.strip())
    if not m:
        continue
    names = set().union(*(expand(n, set()) for n in m.group(2).split()))
    if m.group(1):
        allow = (allow or set()) - names
    else:
        allow = (allow or set()) | names
used = set(re.findall(r"^\d+\s+([a-z0-9_]+)\(", open(sys.argv[1]).read(), re.M))
bad = sorted(used - allow)
print(("DENIED " + " ".join(bad)) if bad else f"{len(used)} distinct calls, all allowed")
PY
)
    case "$res" in
        DENIED*) bad "SystemCallFilter would deny calls deconvd makes: ${res#DENIED }" ;;
        *) ok "SystemCallFilter allows every call of a traced start/infer/reload/drain ($res)" ;;
    esac
    echo "figure - systemd: system calls of a traced start/infer/reload/drain = ${res%% *} distinct"
fi

echo "systemd: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
