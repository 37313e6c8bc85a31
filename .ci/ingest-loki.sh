#!/usr/bin/env bash
# Installs the third-party Loki clients that tests/ingest_loki.rs drives
# against a real tailcast on loopback:
#   - Node:   npm `winston` + `winston-loki` (protobuf + snappy) in target/ingest-loki/node
#   - Python: `python-logging-loki` (JSON) in the venv target/ingest-loki/venv
# Idempotent: a second run with everything in place only checks it.
# Needs python3 and node/npm (Debian: apt-get install python3 nodejs npm);
# installs python3-venv with apt-get when the venv module is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="$root/target/ingest-loki"
venv="$base/venv"
node="$base/node"

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "ingest-loki: installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
fi

mkdir -p "$base"
if [ ! -x "$venv/bin/python" ]; then
    echo "ingest-loki: creating $venv"
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import logging_loki' >/dev/null 2>&1; then
    echo "ingest-loki: installing python-logging-loki"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'python-logging-loki==0.3.1'
fi

if [ ! -f "$node/node_modules/winston-loki/package.json" ] || [ ! -f "$node/node_modules/winston/package.json" ]; then
    echo "ingest-loki: installing winston and winston-loki"
    mkdir -p "$node"
    npm install --prefix "$node" --no-audit --no-fund --loglevel=error --no-save 'winston@3' 'winston-loki@6.1.7'
fi

"$venv/bin/python" -c 'import logging_loki'
NODE_PATH="$node/node_modules" node -e 'require("winston"); require("winston-loki")'
echo "ingest-loki: ready (python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'), node $(node --version))"
