#!/usr/bin/env bash
# Durability figures (`--data-dir`), on this machine, loopback only:
#   1. acknowledged publishes/s and latency with 1 and 64 concurrent
#      publishers: memory only, --fsync 1s, --fsync always;
#   2. resume of 100,000 events from disk after a restart (time, server RSS);
#   3. restart time with about 1 GiB retained.
# Uses the release builds: cargo build --release -p tailcast -p tailcast-load
# Every server is started fresh on a free port and stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${TAILCAST_BIN:-target/release/tailcast}
LOAD=${TAILCAST_LOAD:-target/release/tailcast-load}
EVENTS=${EVENTS:-50000}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start NAME ARGS... : starts a server, sets ADDR and PID.
start() {
    local name=$1
    shift
    "$BIN" serve --addr 127.0.0.1:0 "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 1 600); do
        ADDR=$(sed -n 's|^tailcast listening on http://||p' "$WORK/$name.out")
        [ -n "$ADDR" ] && break
        sleep 0.05
    done
    [ -n "$ADDR" ] || { cat "$WORK/$name.err"; exit 1; }
    # Ready once the log is open (the first request answers after it).
    for _ in $(seq 1 6000); do
        curl -sf "http://$ADDR/health" >/dev/null && return 0
        sleep 0.05
    done
    echo "server $name never answered"
    exit 1
}

stop() {
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
}

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

echo "## publish throughput ($EVENTS events of 64 bytes, no subscriber)"
echo "| server | publishers | acknowledged/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|"
for mode in memory 1s always; do
    for publishers in 1 64; do
        case $mode in
            memory) start pub-$mode ;;
            *) start pub-$mode --data-dir "$WORK/data-$mode-$publishers" --fsync "$mode" ;;
        esac
        n=$EVENTS
        [ "$mode" = always ] && [ "$publishers" = 1 ] && n=$((EVENTS / 10))
        "$LOAD" publish --target "http://$ADDR" --publishers "$publishers" --events "$n" >"$WORK/r.json"
        python3 - "$mode" "$publishers" "$WORK/r.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[3]))
name = {"memory": "memory only", "1s": "--fsync 1s", "always": "--fsync always"}[sys.argv[1]]
print(f"| {name} | {sys.argv[2]} | {r['acknowledged_per_s']:,.0f} | {r['latency']['p50_ms']:.2f} | {r['latency']['p99_ms']:.2f} |")
EOF
        stop
    done
done

echo
echo "## resume of 100,000 events from disk after a restart"
DATA=$WORK/resume
start fill --data-dir "$DATA" --history 200000
FIRST=$(curl -s -XPOST -H 'content-type: text/plain' --data first "http://$ADDR/channels/resume" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$LOAD" publish --target "http://$ADDR" --pub-path /channels/resume --publishers 8 --events 100000 --size 100 >/dev/null
stop
# A small memory: nearly everything comes from the log.
start resume --data-dir "$DATA" --history 200000 --history-bytes 1MiB
before=$(rss_kib "$PID")
python3 - "$ADDR" "$FIRST" "$PID" <<'EOF'
import http.client, sys, time
addr, first, pid = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=60)
started = time.monotonic()
conn.request("GET", "/realtime/resume", headers={"Last-Event-ID": first})
resp = conn.getresponse()
count, peak = 0, 0
while count < 100000:
    line = resp.fp.readline()
    if not line:
        break
    if line.startswith(b"data:"):
        count += 1
        if count % 10000 == 0:
            rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
            peak = max(peak, rss)
elapsed = time.monotonic() - started
print(f"{count} events in {elapsed:.2f} s ({count / elapsed:,.0f} events/s), server RSS peak {peak / 1024:.1f} MiB")
EOF
echo "server RSS before the resume: $((before / 1024)) MiB"
stop

echo
echo "## restart time with about 1 GiB retained"
DATA=$WORK/big
start big --data-dir "$DATA" --retention-bytes 2GiB
"$LOAD" publish --target "http://$ADDR" --publishers 8 --events 16000 --size 65536 >/dev/null
stop
du -sh "$DATA/log"
start big2 --data-dir "$DATA" --retention-bytes 2GiB
grep -o 'event log opened in [0-9.]*s.*segments=[0-9]*.*events=[0-9]*' "$WORK/big2.err" || cat "$WORK/big2.err"
echo "server RSS after opening: $(($(rss_kib "$PID") / 1024)) MiB"
stop
