#!/bin/sh
# The container image end to end: docker/smoke.sh (build, run, smoke, SIGTERM
# drain). Skipped (77) when no container engine works, or with
# PACKAGING_DOCKER=0. About 10 s with a warm build cache, 75 s cold once the
# base image exists (podman here: ../shared/tools/container-engine makes it).
cd "$(dirname "$0")/../.." || exit 1
if [ "${PACKAGING_DOCKER:-1}" = 0 ]; then
    echo "skip - PACKAGING_DOCKER=0"; exit 77
fi
for e in ${CONTAINER_ENGINE:-docker podman}; do
    if command -v "$e" >/dev/null 2>&1 && "$e" info >/dev/null 2>&1; then
        exec env CONTAINER_ENGINE="$e" docker/smoke.sh
    fi
done
echo "skip - no working docker or podman (podman: ../shared/tools/container-engine)"
exit 77
