#!/bin/bash
# HEALTHCHECK for the deconvd image without curl: one HTTP/1.0 GET of
# /v2/health/live over bash's /dev/tcp; healthy iff the status is 200.
# Usage: healthcheck.sh [PORT] [PATH]
port=${1:-8080} path=${2:-/v2/health/live}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = 200 ]
