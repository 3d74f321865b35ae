#!/bin/sh
# The container image end to end: docker/smoke.sh (build, run, smoke, SIGTERM
# drain), then the image's figures (sizes; the runner prints the time).
# A working engine without the base image debian:bookworm-slim first gets it
# from tests/packaging/docker-base.sh (a registry pull, else a debootstrap
# import: root, minutes, once). Skipped (77), with the reason, when no
# container engine works, when the base image cannot be had here (or
# DOCKER_BASE_BUILD=0 forbids making it), when the engine cannot run a
# container here, or with PACKAGING_DOCKER=0. Times: docs/deployment.md
# (Tests).
cd "$(dirname "$0")/../.." || exit 1
if [ "${PACKAGING_DOCKER:-1}" = 0 ]; then
    echo "skip - PACKAGING_DOCKER=0"; exit 77
fi
IMAGE=${IMAGE:-deconvd:smoke}
BASE=${DEBIAN_IMAGE:-debian:bookworm-slim}
for e in ${CONTAINER_ENGINE:-docker podman}; do
    command -v "$e" >/dev/null 2>&1 && "$e" info >/dev/null 2>&1 || continue
    if ! "$e" image inspect "$BASE" >/dev/null 2>&1; then
        if [ "${DOCKER_BASE_BUILD:-1}" = 0 ]; then
            echo "skip - $e works but has no $BASE, and DOCKER_BASE_BUILD=0 (make docker-base)"
            exit 77
        fi
        sh tests/packaging/docker-base.sh "$e"
        case $? in
            0) ;;
            77) echo "skip - $e works but has no $BASE, and it cannot be made here (above)"
                exit 77 ;;
            *) echo "FAIL - making the base image $BASE failed (tests/packaging/docker-base.sh)"
               exit 1 ;;
        esac
    fi
    # An engine may answer `info` and still be unable to run a container
    # (podman in a sandbox that refuses its rlimits or runtime: see
    # ../shared/tools/container-engine): that is this machine, not the image.
    if ! why=$("$e" run --rm --network none --entrypoint true "$BASE" 2>&1); then
        echo "skip - $e cannot run a container here: $(printf '%s\n' "$why" | tail -n 1)"
        exit 77
    fi
    CONTAINER_ENGINE="$e" IMAGE="$IMAGE" docker/smoke.sh || exit 1
    size=$("$e" image inspect -f '{{.Size}}' "$IMAGE")
    base=$("$e" image inspect -f '{{.Size}}' "$BASE")
    bin=$("$e" run --rm --no-healthcheck --entrypoint stat "$IMAGE" -c %s /usr/local/bin/deconvd)
    models=$("$e" run --rm --no-healthcheck --entrypoint du "$IMAGE" -sb /etc/deconvd/models | cut -f1)
    echo "figure - docker: image $IMAGE size = $size bytes"
    echo "figure - docker: base image $BASE size = $base bytes"
    echo "figure - docker: added to the base = $((size - base)) bytes"
    echo "figure - docker: stripped binary = $bin bytes; example models = $models bytes"
    exit 0
done
echo "skip - no working docker or podman (podman: ../shared/tools/container-engine)"
exit 77
