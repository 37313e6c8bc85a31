#!/usr/bin/env bash
# Browser tests of the web console (tests/browser): installs what they need
# on a brand-new Debian machine, then runs them against the real binary.
#
#   bash .ci/browser.sh                 the functional tests (pass/fail)
#   bash .ci/browser.sh --bench [ARGS]  instead, the responsiveness benchmark
#                                       bench/console-bench.mjs, which prints
#                                       figures (ARGS: --rate N --seconds S
#                                       --cap N); it fails only if the run
#                                       itself breaks, never on a figure
#
#   - Debian's chromium (/usr/bin/chromium); browser downloads by test tools
#     are not possible here, so playwright-core (no bundled browser) drives it.
#   - node + npm, and `npm ci` of tests/browser/package-lock.json.
#   - target/debug/tailcast (built here unless TAILCAST_BIN names a binary).
#
# Idempotent: each step is skipped when already done. Screenshots go to
# test-artifacts/browser/ (gitignored); the tests print the folder.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt/dpkg run instead of failing on its lock.
    local opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
    if [ "$(id -u)" -ne 0 ]; then
        sudo -E apt-get "${opts[@]}" update -qq
        sudo -E apt-get "${opts[@]}" install -y -qq --no-install-recommends "$@"
    else
        apt-get "${opts[@]}" update -qq
        apt-get "${opts[@]}" install -y -qq --no-install-recommends "$@"
    fi
}

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "browser.sh: installing ${missing[*]}"
    apt_install "${missing[@]}"
fi
echo "browser.sh: chromium $(dpkg-query -W -f '${Version}' chromium 2>/dev/null || echo '(not from apt)')"

# playwright-core only: it never downloads a browser.
if [ ! -f tests/browser/node_modules/.package-lock.json ] ||
    [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
fi

if [ -z "${TAILCAST_BIN:-}" ]; then
    cargo build --quiet --bin tailcast
    TAILCAST_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/tailcast"
    export TAILCAST_BIN
fi

if [ "${1:-}" = "--bench" ]; then
    shift
    exec node bench/console-bench.mjs "$@"
fi

cd tests/browser
node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout ansi.test.mjs fields.test.mjs console.test.mjs viewer.test.mjs tls.test.mjs
