#!/bin/sh
# Runs scripts/smoke.sh against a local daemon on an ephemeral loopback port.
. "$(dirname "$0")/lib.sh"
need_bin
port=$(start_daemon smoke) || exit 1
scripts/smoke.sh "http://127.0.0.1:$port"
rc=$?
[ "$(stop_daemon smoke)" = 0 ] || { echo "FAIL - exit status after SIGTERM is not 0"; exit 1; }
exit "$rc"
