#!/usr/bin/env bash
# Installs the command-line clients that tests/ingest_ndjson.rs drives:
#   - curl (the HTTP client that sends the shipper-shaped requests),
#   - gzip, zstd and python3 (compress the bodies: gzip, zstd, deflate),
#   - redis-server (the multi-channel publish on real Redis).
# Idempotent: with everything in place it only checks and reports.
# Debian packages, through apt-get.
set -euo pipefail

missing=()
for tool in curl:curl gzip:gzip zstd:zstd python3:python3 redis-server:redis-server; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "ingest-core: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "ingest-core: ready ($(curl --version | head -1 | cut -d' ' -f1-2), $(zstd --version | head -1), $(redis-server --version | cut -d' ' -f1-3))"
