#!/usr/bin/env bash
# Installs the third-party SSE code that tailcast's interoperability tests
# (tests/interop.rs, tests/listen.rs, tests/publish.rs) run against:
#   - Python: httpx, httpx-sse, sse-starlette, uvicorn, PyJWT[crypto], h2 in tests/interop/.venv
#   - Node:   the npm `eventsource` package in tests/interop/node_modules
# Idempotent: a second run with everything in place only checks it.
# Needs python3 and node/npm (Debian: apt-get install python3 nodejs npm);
# installs python3-venv with apt-get when the venv module is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
interop="$root/tests/interop"
venv="$interop/.venv"

if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "interop: installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3-venv >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "interop: creating $venv"
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import httpx, httpx_sse, sse_starlette, uvicorn, jwt, cryptography, h2' >/dev/null 2>&1; then
    echo "interop: installing Python packages"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$interop/requirements.txt"
fi

if [ ! -f "$interop/node_modules/eventsource/package.json" ]; then
    echo "interop: installing npm packages"
    (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error)
fi

"$venv/bin/python" -c 'import httpx, httpx_sse, sse_starlette, uvicorn, jwt, cryptography, h2'
node -e 'require.resolve("eventsource", {paths: [process.argv[1]]})' "$interop"
echo "interop: ready (python $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'), node $(node --version))"
