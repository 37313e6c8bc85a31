#!/usr/bin/env bash
# Cheap checks of what ships beside the binary (deploy/, Dockerfile), run
# from .ci/run. No container engine is needed:
#   1. systemd-analyze verify deploy/tailcast.service (with the binary built
#      here and the man page from `tailcast man`, since verify checks both),
#      and its `systemd-analyze security` exposure must stay at most 2.0;
#   2. the compose files parse as YAML, and their Traefik labels, mounts and
#      commands are what the README promises (.ci/check_compose.py);
#   3. the Dockerfile's final stage has no toolchain, a non-root user, and a
#      HEALTHCHECK run by the binary itself.
# Building and running the image is not part of this check (no Docker daemon
# and no registry here); see docs/deploy.md for what was run by hand.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

cargo build --quiet -p tailcast --bin tailcast
BIN="$CARGO_TARGET_DIR/debug/tailcast"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tailcast-deploy-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

echo "deploy-check: systemd unit"
if ! command -v systemd-analyze >/dev/null; then
    echo "deploy-check: systemd-analyze is missing (apt-get install systemd)" >&2
    exit 1
fi
mkdir -p "$WORK/unit" "$WORK/man/man1"
"$BIN" man > "$WORK/man/man1/tailcast.1"
sed "s#/usr/local/bin/tailcast#$BIN#g" deploy/tailcast.service > "$WORK/unit/tailcast.service"
MANPATH="$WORK/man" systemd-analyze verify "$WORK/unit/tailcast.service"
exposure="$(systemd-analyze security --offline=yes "$WORK/unit/tailcast.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for tailcast.service: \([0-9.]*\).*/\1/p')"
echo "deploy-check: systemd-analyze verify: ok; security exposure $exposure (0 = locked down, 10 = exposed)"
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || {
    echo "deploy-check: exposure ${exposure:-unknown} is above 2.0" >&2
    exit 1
}

echo "deploy-check: compose files"
"$BIN" serve --help > "$WORK/serve-help"
python3 .ci/check_compose.py --serve-help "$WORK/serve-help" --dockerfile Dockerfile \
    deploy/compose.yaml deploy/compose-cluster.yaml

echo "deploy-check: Dockerfile"
final="$(awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END {printf "%s", stage}' Dockerfile)"
grep -q '^FROM scratch' <<<"$final" || { echo "final stage is not FROM scratch" >&2; exit 1; }
grep -Eq '^USER [1-9][0-9]*:[1-9][0-9]*$' <<<"$final" || { echo "final stage has no numeric non-root USER" >&2; exit 1; }
grep -q 'CMD \["/tailcast", "health"' <<<"$final" || { echo "HEALTHCHECK is not tailcast health" >&2; exit 1; }
grep -q '^VOLUME \["/data"\]' <<<"$final" || { echo "no /data volume" >&2; exit 1; }
port="$(sed -n 's/.*TAILCAST_ADDR=0\.0\.0\.0:\([0-9]*\).*/\1/p' <<<"$final")"
grep -q "^EXPOSE $port\$" <<<"$final" || { echo "EXPOSE does not match TAILCAST_ADDR port $port" >&2; exit 1; }
echo "deploy-check: Dockerfile: ok (scratch, non-root, HEALTHCHECK tailcast health, port $port)"
echo "deploy-check: all ok"
