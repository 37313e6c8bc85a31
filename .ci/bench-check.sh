#!/usr/bin/env bash
# Functional check of the benchmark tooling, not a timing test:
#  1. the criterion benches build (cargo bench --no-run);
#  2. tailcast-load runs once with tiny sizes against a real
#     `tailcast serve` on 127.0.0.1 port 0, in each mode (fan-out at max
#     rate and at a paced rate, file following, idle connections), and
#     asserts zero loss, duplicates and reordering (--check);
#  3. the idle mode's memory figure (server RSS per idle connection, 2.7 KiB
#     measured) is checked against generous bounds: it must be measured at
#     all, above 0.5 KiB (else it measured nothing, e.g. the wrong process)
#     and below 32 KiB (a per-connection buffer of hyper's size fails).
# Idempotent; loopback only; every wait is bounded. Called from .ci/run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

echo "bench-check: building the criterion benches"
cargo bench --workspace --no-run --quiet

echo "bench-check: building tailcast and tailcast-load"
cargo build --quiet -p tailcast --bin tailcast
cargo build --quiet -p tailcast-load
TAILCAST="$CARGO_TARGET_DIR/debug/tailcast"
LOAD="$CARGO_TARGET_DIR/debug/tailcast-load"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tailcast-bench-check.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

: > "$WORK/bench.log"
"$TAILCAST" serve --addr 127.0.0.1:0 "bench=$WORK/bench.log" > "$WORK/out" 2> "$WORK/err" &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 100); do
    PORT="$(sed -n 's#^tailcast listening on http://127.0.0.1:\([0-9]*\).*#\1#p' "$WORK/out")"
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    echo "bench-check: tailcast did not start" >&2
    cat "$WORK/err" >&2
    exit 1
fi
TARGET="http://127.0.0.1:$PORT"

passed=0
failed=0
check() { # name, then tailcast-load arguments
    local name="$1"
    shift
    if timeout 120 "$LOAD" "$@" --target "$TARGET" --server-pid "$SERVER_PID" --check \
        --json-out "$WORK/$name.json" > /dev/null 2> "$WORK/$name.err"; then
        echo "bench-check: ok   $name: $(tail -1 "$WORK/$name.err")"
        passed=$((passed + 1))
    else
        echo "bench-check: FAIL $name" >&2
        cat "$WORK/$name.err" >&2
        failed=$((failed + 1))
    fi
}

# Idle first, on the fresh server: its RSS figure is then not blurred by
# memory the other modes freed.
check idle idle --sub-path /realtime/check3 --connections 1000 --settle 0.5
if [ -f "$WORK/idle.json" ] && python3 - "$WORK/idle.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
per = report.get("rss_per_connection_kib")
print(f"bench-check: idle RSS {report.get('rss_before_kib')} -> {report.get('rss_connected_kib')} KiB, "
      f"{per} KiB per connection (bounds 0.5 to 32)")
sys.exit(0 if per is not None and 0.5 <= per <= 32 else 1)
PY
then
    echo "bench-check: ok   idle-memory"
    passed=$((passed + 1))
else
    echo "bench-check: FAIL idle-memory: the figure is missing or out of bounds" >&2
    failed=$((failed + 1))
fi
check fanout-max fanout --sub-path /realtime/check1 --pub-path /channels/check1 \
    --subscribers 20 --events 300
check fanout-paced fanout --sub-path /realtime/check2 --pub-path /channels/check2 \
    --subscribers 50 --events 100 --rate 500
check follow follow --sub-path "/logs/bench?tail=0" --file "$WORK/bench.log" \
    --subscribers 10 --events 200 --rate 1000
check fanout-h2c fanout --sub-path /realtime/check4 --pub-path /channels/check4 \
    --subscribers 40 --events 100 --rate 500 --h2-streams 10

echo "bench-check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
