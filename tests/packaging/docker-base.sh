#!/bin/sh
# Makes the base image docker/Dockerfile builds FROM (debian:bookworm-slim):
# pulled where a registry answers, else (no registry, as on the project's
# build machines) a debootstrap minbase of Debian 12 from the archive this
# machine's apt uses, imported under that name. Does nothing when the image
# is already there.
# `make docker-base`; tests/packaging/test_docker.sh calls it (unless
# DOCKER_BASE_BUILD=0). Needs root and debootstrap (Debian package); minutes
# (docs/deployment.md has a measured time).
# Exit: 0 the image exists, 77 it cannot be made here (reason printed),
# 1 making it failed.
# Usage: tests/packaging/docker-base.sh ENGINE     (docker or podman)
set -u
engine=${1:?usage: docker-base.sh docker|podman}
image=${DEBIAN_IMAGE:-debian:bookworm-slim}
say() { printf 'docker-base: %s\n' "$*"; }
if "$engine" image inspect "$image" >/dev/null 2>&1; then
    say "$image is there ($engine)"; exit 0
fi
# A registry, where there is one, has the real thing (bounded: no hang
# without network).
if timeout 120 "$engine" pull "docker.io/library/$image" >/dev/null 2>&1; then
    "$engine" image inspect "$image" >/dev/null 2>&1 ||
        "$engine" tag "docker.io/library/$image" "$image"
    say "pulled $image"; exit 0
fi
[ "$(id -u)" = 0 ] || { say "no $image, no registry, and debootstrap needs root"; exit 77; }
command -v debootstrap >/dev/null 2>&1 ||
    { say "no $image, and no debootstrap to make it (apt-get install debootstrap)"; exit 77; }
# The archive is whichever one this machine's apt already uses.
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || { say "no $image, and no apt archive configured to debootstrap from"; exit 77; }
root=$(mktemp -d "${TMPDIR:-/tmp}/deconvd-base.XXXXXX") || exit 1
trap 'rm -rf "$root"' EXIT
t0=$(date +%s)
say "making $image: debootstrap --variant=minbase bookworm from $mirror"
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
    tail -n 20 "$root.log"; rm -f "$root.log"; say "FAIL: debootstrap"; exit 1
fi
rm -f "$root.log"
tar -C "$root" -c . | "$engine" import - "$image" >/dev/null || { say "FAIL: $engine import"; exit 1; }
echo "figure - docker: base image made in = $(($(date +%s) - t0)) s"
echo "figure - docker: base image $image size = $("$engine" image inspect -f '{{.Size}}' "$image") bytes"
