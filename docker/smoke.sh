#!/bin/sh
# Builds the deconvd image, runs it on a free loopback port, runs
# scripts/smoke.sh against it, stops it with SIGTERM and checks that it drained
# and exited 0. Removes the container; leaves the image (tag deconvd:smoke).
#
# Usage: docker/smoke.sh            (from anywhere; uses the repository root)
# Env:   CONTAINER_ENGINE=docker|podman   default: the first that works
#        IMAGE=deconvd:smoke   READY_TIMEOUT=60 (s)   BUILD_ARGS="..." (e.g. --no-cache)
#        SMOKE_VERBOSE=1       print the build log (otherwise only its tail on failure)
set -eu
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-deconvd:smoke}
READY_TIMEOUT=${READY_TIMEOUT:-60}
say() { printf 'docker-smoke: %s\n' "$*"; }
die() { say "FAIL: $*"; exit 1; }

engine=""
for e in ${CONTAINER_ENGINE:-docker podman}; do
    if command -v "$e" >/dev/null 2>&1 && "$e" info >/dev/null 2>&1; then engine=$e; break; fi
done
[ -n "$engine" ] || die "neither docker nor podman works here (podman: run ../shared/tools/container-engine)"
say "engine: $engine ($("$engine" --version))"

# podman writes OCI images by default, which drop HEALTHCHECK: ask for the
# docker format. The base image is local (no registry needed): never pull.
# Podman runs HEALTHCHECKs from systemd timers (absent here): leave them
# out of the container; this script checks the image has it and runs it itself.
case "$engine" in
    podman) build_flags="--format docker --pull=never" run_flags="--no-healthcheck" ;;
    *)      build_flags="" run_flags="" ;;
esac
old_id=$("$engine" image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
buildlog=$(mktemp "${TMPDIR:-/tmp}/deconvd-docker-build.XXXXXX")
t0=$(date +%s)
# shellcheck disable=SC2086
if ! "$engine" build $build_flags --network host ${BUILD_ARGS:-} -t "$IMAGE" \
        -f docker/Dockerfile . >"$buildlog" 2>&1; then
    tail -n 30 "$buildlog"; rm -f "$buildlog"
    die "image build failed"
fi
[ -n "${SMOKE_VERBOSE:-}" ] && cat "$buildlog"
rm -f "$buildlog"
t1=$(date +%s)
# Our previous smoke image, now untagged, is of no use: drop it (only it).
new_id=$("$engine" image inspect -f '{{.Id}}' "$IMAGE")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    "$engine" rmi "$old_id" >/dev/null 2>&1 || true
fi
say "built $IMAGE in $((t1 - t0)) s; size: $("$engine" image inspect -f '{{.Size}}' "$IMAGE") bytes"

cid=""
cleanup() {
    if [ -n "$cid" ]; then
        "$engine" rm -f "$cid" >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT INT TERM

# Hardened like the Kubernetes manifest: read-only root, no capabilities.
# 127.0.0.1::8080 = a free loopback port chosen by the engine.
# shellcheck disable=SC2086
cid=$("$engine" run -d $run_flags -p 127.0.0.1::8080 --read-only --cap-drop ALL \
        --security-opt no-new-privileges "$IMAGE") || die "container did not start"
port=$("$engine" port "$cid" 8080/tcp | sed -n 's/^.*:\([0-9][0-9]*\)$/\1/p' | head -n1)
[ -n "$port" ] || die "no published port for 8080"
base=http://127.0.0.1:$port
say "container ${cid%"${cid#????????????}"} on $base"

i=0
until curl -fsS -m 2 "$base/v2/health/ready" 2>/dev/null | grep -q '"ready": *true'; do
    i=$((i + 1))
    if [ "$i" -ge $((READY_TIMEOUT * 5)) ]; then
        "$engine" logs "$cid" 2>&1 | tail -n 20
        die "not ready after ${READY_TIMEOUT} s"
    fi
    if [ "$("$engine" inspect -f '{{.State.Running}}' "$cid")" != true ]; then
        "$engine" logs "$cid" 2>&1 | tail -n 20
        die "container exited before becoming ready"
    fi
    sleep 0.2
done
t2=$(date +%s)
say "ready after $((t2 - t1)) s"

hc=$("$engine" image inspect -f '{{.Config.Healthcheck.Test}}' "$IMAGE" 2>/dev/null || true)
case "$hc" in
    *deconvd-healthcheck*) say "ok - image HEALTHCHECK: $hc" ;;
    *) die "image has no HEALTHCHECK (podman needs --format docker): '$hc'" ;;
esac
"$engine" exec "$cid" /usr/local/bin/deconvd-healthcheck 8080 /v2/health/live \
    || die "HEALTHCHECK command failed against a live server"
say "ok - HEALTHCHECK command succeeds inside the container"
if "$engine" exec "$cid" /usr/local/bin/deconvd-healthcheck 8080 /no/such/path; then
    die "HEALTHCHECK command succeeds on a 404"
fi
say "ok - HEALTHCHECK command fails on a non-200"
user=$("$engine" exec "$cid" id -u)
[ "$user" != 0 ] || die "container runs as root"
say "ok - runs as uid $user"

scripts/smoke.sh "$base" || { "$engine" logs "$cid" 2>&1 | tail -n 20; die "scripts/smoke.sh failed"; }

# stop sends the image's STOPSIGNAL (SIGTERM) and SIGKILLs after -t seconds,
# which would show as exit code 137.
"$engine" stop -t 30 "$cid" >/dev/null || die "stop failed"
code=$("$engine" inspect -f '{{.State.ExitCode}}' "$cid")
logs=$("$engine" logs "$cid" 2>&1)
[ "$code" = 0 ] || { printf '%s\n' "$logs" | tail -n 20; die "exit code $code after SIGTERM (want 0)"; }
say "ok - exit code 0 after SIGTERM"
for line in msg=draining msg=drained; do
    printf '%s\n' "$logs" | grep -q "$line" || { printf '%s\n' "$logs" | tail -n 20; die "no '$line' in the logs"; }
    say "ok - logs contain $line"
done
"$engine" rm "$cid" >/dev/null && cid=""
say "PASS (image $IMAGE kept; total $(($(date +%s) - t0)) s)"
