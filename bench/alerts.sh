#!/usr/bin/env bash
# Alerting off the publish path (`--alerts`), on this machine, loopback
# only: the fan-out scenario (one publisher as fast as answers come,
# subscribers on the channel) with
#   - no --alerts,
#   - 20 rules on the channel whose regexes match nothing,
#   - 1 rule matching every event (window 0s: one notification per event)
#     whose webhook is a local receiver answering 200,
#   - 1 rule matching every event whose webhook is unreachable
#     (connection refused: retries, a full outbox, drops),
# for 100 and 1,000 subscribers. Prints a Markdown table (and writes it to
# bench/results/alerts-<stamp>.md and alerts-latest.md).
# Server pinned to core 0, load tool and receiver to core 1 (taskset).
# Uses the release builds: cargo build --release -p tailcast -p tailcast-load
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${TAILCAST_BIN:-target/release/tailcast}
LOAD=${TAILCAST_LOAD:-target/release/tailcast-load}
TOTAL=${TOTAL:-500000}
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench/results
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$BIN" ] && [ -x "$LOAD" ] || {
    echo "build first: cargo build --release -p tailcast -p tailcast-load" >&2
    exit 1
}

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
else
    PIN_SERVER=()
    PIN_LOAD=()
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The webhook receiver: answers 200 to every POST and counts them.
RECEIVER_PORT=$(free_port)
"${PIN_LOAD[@]}" python3 - "$RECEIVER_PORT" "$WORK/received" <<'PY' &
import http.server, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
count = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
        with lock:
            count += 1
            open(out, "w").write(str(count))
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
PIDS+=($!)
DEAD_PORT=$(free_port)

# rules MODE: writes the alerts file of MODE to $WORK/MODE.toml.
rules() {
    local file="$WORK/$1.toml"
    : >"$file"
    case $1 in
        nomatch)
            for i in $(seq 1 20); do
                printf '[[rule]]\nname = "r%s"\nchannels = ["bench"]\nmatch = "no such thing %s|(?i)panic at %s"\nwebhook = "http://127.0.0.1:%s/r%s"\n\n' \
                    "$i" "$i" "$i" "$RECEIVER_PORT" "$i" >>"$file"
            done ;;
        match)
            printf '[[rule]]\nname = "all"\nchannels = ["bench"]\nmatch = "."\nwebhook = "http://127.0.0.1:%s/all"\nwindow = "0s"\n' \
                "$RECEIVER_PORT" >"$file" ;;
        unreachable)
            printf '[[rule]]\nname = "all"\nchannels = ["bench"]\nmatch = "."\nwebhook = "http://127.0.0.1:%s/all"\nwindow = "0s"\n' \
                "$DEAD_PORT" >"$file" ;;
    esac
    echo "$file"
}

# start NAME ARGS... : starts a server, sets ADDR and PID.
start() {
    local name=$1
    shift
    : >"$WORK/quiet.log"
    "${PIN_SERVER[@]}" "$BIN" serve --addr 127.0.0.1:0 "$@" "quiet=$WORK/quiet.log" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PID=$!
    PIDS+=("$PID")
    ADDR=
    for _ in $(seq 1 600); do
        ADDR=$(sed -n 's|^tailcast listening on http://||p' "$WORK/$name.out")
        [ -n "$ADDR" ] && break
        sleep 0.05
    done
    [ -n "$ADDR" ] || { cat "$WORK/$name.err"; exit 1; }
}

stop() {
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
}

metric_sum() { # NAME: the sum of a metric's samples
    curl -s "http://$ADDR/metrics" | awk -v n="$1" 'index($0, n) == 1 { s += $NF } END { print s + 0 }'
}

{
echo "# Alerting and fan-out ($STAMP)"
echo
echo "One publisher as fast as answers come (64-byte events), subscribers on the channel; $TOTAL deliveries per run."
echo
echo "| subscribers | alerts | deliveries/s | publishes/s | delivery p50 / p99 ms | publish p50 / p99 ms | lost | notifications made | dropped |"
echo "|---|---|---|---|---|---|---|---|---|"
} | tee "$WORK/table.md"
for subscribers in 100 1000; do
    for mode in none nomatch match unreachable; do
        case $mode in
            none) start "$mode-$subscribers" ;;
            *) start "$mode-$subscribers" --alerts "$(rules "$mode")" ;;
        esac
        events=$((TOTAL / subscribers))
        "${PIN_LOAD[@]}" "$LOAD" fanout --target "http://$ADDR" --subscribers "$subscribers" \
            --events "$events" --server-pid "$PID" >"$WORK/f.json"
        fired=$(metric_sum tailcast_alerts_fired_total)
        dropped=$(metric_sum tailcast_alerts_dropped_total)
        python3 - "$mode" "$WORK/f.json" "$fired" "$dropped" <<'PY' | tee -a "$WORK/table.md"
import json, sys
r = json.load(open(sys.argv[2]))
name = {"none": "none", "nomatch": "20 rules matching nothing",
        "match": "1 rule matching every event (webhook answers 200)",
        "unreachable": "1 rule matching every event, webhook unreachable"}[sys.argv[1]]
print(f"| {r['subscribers']:,} | {name} | {r['deliveries_per_s']:,.0f} | {r['rate_achieved']:,.0f} | "
      f"{r['latency']['p50_ms']:.2f} / {r['latency']['p99_ms']:.2f} | "
      f"{r['publish_latency']['p50_ms']:.2f} / {r['publish_latency']['p99_ms']:.2f} | {r['lost']} | "
      f"{int(float(sys.argv[3])):,} | {int(float(sys.argv[4])):,} |")
PY
        stop
    done
done
{
echo
echo "Machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores, shared with other work: figures are noisy; compare rows of one run only. tailcast $(git rev-parse --short HEAD)."
} | tee -a "$WORK/table.md"
mkdir -p "$OUT"
cp "$WORK/table.md" "$OUT/alerts-$STAMP.md"
cp "$WORK/table.md" "$OUT/alerts-latest.md"
