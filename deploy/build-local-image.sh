#!/usr/bin/env bash
# Builds the tailcast image without a registry: compiles the static (musl)
# binary here, then runs the Dockerfile's final stage with buildah on a
# local context instead of the Rust build stage (which needs the rust image
# from Docker Hub). What ends up in the image is what the Dockerfile puts
# there. Needs: rustup target x86_64-unknown-linux-musl, musl-tools, buildah.
#
#   bash deploy/build-local-image.sh [TAG]        # default tailcast:local
#
# Prints the image size. With --run, also starts it with podman (host
# network, loopback port 18080), runs its HEALTHCHECK and stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TAG="tailcast:local"
RUN=0
for arg in "$@"; do
    case "$arg" in
        --run) RUN=1 ;;
        *) TAG="$arg" ;;
    esac
done
TARGET=x86_64-unknown-linux-musl
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
STORAGE=(--storage-driver "${BUILDAH_STORAGE_DRIVER:-vfs}")

cargo build --release --locked --target "$TARGET" -p tailcast --bin tailcast
BIN="$CARGO_TARGET_DIR/$TARGET/release/tailcast"
file "$BIN" | grep -q 'static' || { echo "$BIN is not statically linked" >&2; exit 1; }

CTX="$(mktemp -d "${TMPDIR:-/tmp}/tailcast-image.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT
# The same rootfs the Dockerfile's build stage makes.
mkdir -p "$CTX/rootfs/etc" "$CTX/rootfs/tmp" "$CTX/rootfs-data/data"
cp "$BIN" "$CTX/rootfs/tailcast"
echo 'tailcast:x:65532:65532:tailcast:/data:/nonexistent' > "$CTX/rootfs/etc/passwd"
echo 'tailcast:x:65532:' > "$CTX/rootfs/etc/group"
chmod 1777 "$CTX/rootfs/tmp"
chmod 0700 "$CTX/rootfs-data/data"
# The Dockerfile's last stage, reading /rootfs* from the context.
awk '/^FROM /{stage=""} {stage = stage $0 "\n"} END {printf "%s", stage}' Dockerfile |
    sed 's#^COPY --from=build \(--chown=[0-9:]* \)\{0,1\}/rootfs#COPY \1rootfs#' > "$CTX/Containerfile"
grep -q -- '--from=' "$CTX/Containerfile" && { echo "unexpected COPY --from in the final stage" >&2; exit 1; }

buildah "${STORAGE[@]}" bud --format docker --layers=false -t "$TAG" -f "$CTX/Containerfile" "$CTX"
buildah "${STORAGE[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$TAG"
echo "binary: $(stat -c %s "$BIN") bytes"

# The file system as the image has it: owners and modes that matter.
WC="$(buildah "${STORAGE[@]}" from "$TAG")"
MNT="$(buildah "${STORAGE[@]}" mount "$WC")"
(cd "$MNT" && find . -mindepth 1 -maxdepth 2 -printf '%M %u:%g %s %p\n' | sort -k4)
modes="$(stat -c '%a %u:%g' "$MNT/tmp") | $(stat -c '%a %u:%g' "$MNT/data") | $(stat -c '%a %u:%g' "$MNT/tailcast")"
buildah "${STORAGE[@]}" umount "$WC" >/dev/null
buildah "${STORAGE[@]}" rm "$WC" >/dev/null
[ "$modes" = "1777 0:0 | 700 65532:65532 | 755 0:0" ] ||
    { echo "unexpected /tmp | /data | /tailcast modes and owners: $modes" >&2; exit 1; }
echo "file system: /tmp 1777 root, /data 700 tailcast, /tailcast 755 root"

if [ "$RUN" = 1 ]; then
    NAME="tailcast-image-check-$$"
    PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    # crun cannot run on hybrid cgroup hierarchies; runc can.
    RUNTIME=()
    if command -v runc >/dev/null; then RUNTIME=(--runtime runc); fi
    PODMAN=(podman "${STORAGE[@]}" "${RUNTIME[@]}")
    trap '"${PODMAN[@]}" rm -f "$NAME" >/dev/null 2>&1 || true; rm -rf "$CTX"' EXIT
    # Limits no higher than this machine allows (podman's defaults may be);
    # no systemd timer for the health check: it is run by hand below.
    "${PODMAN[@]}" run -d --name "$NAME" --network host \
        --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=4096:4096 \
        --health-interval disable -e "TAILCAST_ADDR=127.0.0.1:$PORT" "$TAG" >/dev/null
    echo "container user: $("${PODMAN[@]}" inspect -f '{{.Config.User}}' "$NAME")"
    ok=0
    for _ in $(seq 1 50); do
        if "${PODMAN[@]}" healthcheck run "$NAME" >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    [ "$ok" = 1 ] || { "${PODMAN[@]}" logs "$NAME" >&2; echo "healthcheck never passed" >&2; exit 1; }
    echo "healthcheck (tailcast health inside the image): passed"
    curl -sN --max-time 2 "http://127.0.0.1:$PORT/stream-logs" | grep -m1 '^data: ' || true
    "${PODMAN[@]}" stop -t 10 "$NAME" >/dev/null
    echo "exit status after SIGTERM: $("${PODMAN[@]}" inspect -f '{{.State.ExitCode}}' "$NAME")"
    "${PODMAN[@]}" logs "$NAME" 2>&1 | tail -n 4
fi
