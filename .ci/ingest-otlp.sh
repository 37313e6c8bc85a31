#!/usr/bin/env bash
# Installs the OpenTelemetry clients that tests/ingest_otlp.rs drives
# against `POST /v1/logs`:
#   - Python: opentelemetry-sdk + opentelemetry-exporter-otlp-proto-http
#     (protobuf, with and without gzip) in target/ingest-otlp/venv
#   - Node:   @opentelemetry/sdk-logs + @opentelemetry/exporter-logs-otlp-http
#     (OTLP JSON) in target/ingest-otlp/node/node_modules
# Versions are pinned in tests/ingest_otlp/requirements.txt (pip freeze)
# and tests/ingest_otlp/package.json with its package-lock.json (npm ci). Idempotent: a second run with everything
# in place only checks it. Needs python3 and node/npm (Debian: apt-get
# install python3 nodejs npm); installs python3-venv with apt-get when the
# venv module is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
spec="$root/tests/ingest_otlp"
dest="$root/target/ingest-otlp"
venv="$dest/venv"
node_dir="$dest/node"
py_check='import opentelemetry.sdk._logs, opentelemetry.exporter.otlp.proto.http._log_exporter'
node_pkgs=(@opentelemetry/api-logs @opentelemetry/exporter-logs-otlp-http @opentelemetry/resources @opentelemetry/sdk-logs)

mkdir -p "$dest"
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "ingest-otlp: installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x "$venv/bin/python" ]; then
    echo "ingest-otlp: creating $venv"
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "$py_check" >/dev/null 2>&1 \
    || ! cmp -s "$spec/requirements.txt" "$venv/requirements.txt"; then
    echo "ingest-otlp: installing Python packages"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$spec/requirements.txt"
    cp "$spec/requirements.txt" "$venv/requirements.txt"
fi

mkdir -p "$node_dir"
if ! cmp -s "$spec/package-lock.json" "$node_dir/package-lock.json" \
    || [ ! -f "$node_dir/node_modules/@opentelemetry/exporter-logs-otlp-http/package.json" ]; then
    echo "ingest-otlp: installing npm packages"
    cp "$spec/package.json" "$spec/package-lock.json" "$node_dir/"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

"$venv/bin/python" -c "$py_check"
for pkg in "${node_pkgs[@]}"; do
    node -e 'require.resolve(process.argv[1], {paths: [process.argv[2]]})' "$pkg" "$node_dir"
done
echo "ingest-otlp: ready (python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'), node $(node --version))"
