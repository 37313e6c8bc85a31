#!/usr/bin/env bash
# Ingest benchmark (issue 22): one client pushing Loki protobuf, OTLP
# protobuf or syslog (RFC 5424, octet-counted, one TCP connection) batches
# of 1,000 records as fast as answers come, one SSE subscriber on the
# records' channel checking that each one arrives once and in order; and
# the fan-out latency of 100 other subscribers (500 events/s on another
# channel) with and without a Loki ingest running at the same time.
#
# Release builds; a fresh server per run, pinned to core 0 and the load
# tool(s) to core 1, as bench/compare.sh does. Loopback only. Each scenario
# runs --rounds times (default 2); the load average is recorded before
# each run. Writes bench/results/ingest-<stamp>.{json,md} and copies them
# to bench/results/ingest-latest.{json,md}.
#
# Usage: bench/ingest.sh [--quick] [--rounds N] [--records N] [--out DIR]
#   --quick   tiny sizes, a smoke test of the script itself
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
QUICK=0
ROUNDS=2
RECORDS=2000000
OUT="$ROOT/bench/results"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --records) RECORDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
FAN_EVENTS=10000 # 20 s at 500/s
if [ "$QUICK" = 1 ]; then
    RECORDS=20000
    FAN_EVENTS=1000
fi

LOAD="$CARGO_TARGET_DIR/release/tailcast-load"
TAILCAST="$CARGO_TARGET_DIR/release/tailcast"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tailcast-ingest.XXXXXX")"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RAW="$WORK/raw"
mkdir -p "$RAW" "$OUT"
SERVER_PID=""
BG_PID=""

stop_pid() { # pid: TERM, bounded wait, then KILL
    local pid="$1" i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop_pid "$BG_PID"
    stop_pid "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "[ingest] $*" >&2; }

log "building tailcast and tailcast-load (release)"
(cd "$ROOT" && cargo build --release --quiet -p tailcast --bin tailcast && cargo build --release --quiet -p tailcast-load)

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
    PINNING="server on core 0, load tool(s) on core 1 (taskset)"
else
    log "fewer than 2 cores or no taskset: running unpinned"
    PIN_SERVER=()
    PIN_LOAD=()
    PINNING="unpinned"
fi

# Sets PORT, SYSLOG_PORT and SERVER_PID.
start_tailcast() {
    local dir="$WORK/tailcast" i
    rm -rf "$dir" && mkdir -p "$dir" && : > "$dir/bench.log"
    "${PIN_SERVER[@]}" "$TAILCAST" serve --addr 127.0.0.1:0 --history 100000 \
        --syslog-tcp 127.0.0.1:0 --syslog-channel bench "bench=$dir/bench.log" > "$dir/out" 2> "$dir/err" &
    SERVER_PID=$!
    PORT=""
    SYSLOG_PORT=""
    for i in $(seq 1 100); do
        PORT="$(sed -n 's#^tailcast listening on http://127.0.0.1:\([0-9]*\).*#\1#p' "$dir/out")"
        SYSLOG_PORT="$(sed -n 's#^syslog listening on tcp://127.0.0.1:\([0-9]*\).*#\1#p' "$dir/out")"
        [ -n "$PORT" ] && [ -n "$SYSLOG_PORT" ] && break
        sleep 0.1
    done
    [ -n "$PORT" ] && [ -n "$SYSLOG_PORT" ] || { cat "$dir/err" >&2; return 1; }
}

stop_server() {
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

ingest_args() { # protocol records: every body built before the first push
    local args=(ingest --protocol "$1" --batch 1000 --records "$2" --target "http://127.0.0.1:$PORT"
        --server-pid "$SERVER_PID" --drain-timeout 120 --prebuild $(($2 / 1000 + 1)))
    [ "$1" = syslog-tcp ] && args+=(--syslog "127.0.0.1:$SYSLOG_PORT")
    echo "${args[@]}"
}

run_ingest() { # protocol round
    local p="$1" r="$2" name="ingest-$1-$2"
    start_tailcast
    echo "$(loadavg)" > "$RAW/$name.loadavg"
    log "$name: $RECORDS records (load average $(loadavg))"
    # shellcheck disable=SC2046
    if ! "${PIN_LOAD[@]}" "$LOAD" $(ingest_args "$p" "$RECORDS") --label "$p" \
        --json-out "$RAW/$name.json" > /dev/null; then
        log "$name: the run reported problems (kept in the results)"
    fi
    stop_server
}

FAN_ARGS=(fanout --subscribers 100 --events "$FAN_EVENTS" --rate 500 --drain-timeout 60
    --pub-path /channels/fan --sub-path /realtime/fan)

run_fanout() { # round with_ingest(0|1) bg_records
    local r="$1" bg="$2" name
    if [ "$bg" = 1 ]; then name="fanout-loki-$r"; else name="fanout-alone-$r"; fi
    start_tailcast
    echo "$(loadavg)" > "$RAW/$name.loadavg"
    if [ "$bg" = 1 ]; then
        log "$name: Loki ingest of $3 records in the background"
        # shellcheck disable=SC2046
        "${PIN_LOAD[@]}" "$LOAD" $(ingest_args loki "$3") --label loki-background \
            --json-out "$RAW/$name.bg.json" > /dev/null 2> "$WORK/bg.err" &
        BG_PID=$!
        local i
        for i in $(seq 1 600); do
            grep -q '^ingest: sending' "$WORK/bg.err" 2>/dev/null && break
            kill -0 "$BG_PID" 2>/dev/null || break
            sleep 0.1
        done
        sleep 1 # let the ingest reach its pace
    fi
    log "$name: 100 subscribers, $FAN_EVENTS events at 500/s (load average $(loadavg))"
    if ! "${PIN_LOAD[@]}" "$LOAD" "${FAN_ARGS[@]}" --target "http://127.0.0.1:$PORT" \
        --server-pid "$SERVER_PID" --label "$name" --json-out "$RAW/$name.json" > /dev/null; then
        log "$name: the run reported problems (kept in the results)"
    fi
    if [ "$bg" = 1 ]; then
        # The background ingest was sized to outlast the fan-out; wait for it (bounded).
        for i in $(seq 1 1200); do
            kill -0 "$BG_PID" 2>/dev/null || break
            sleep 0.1
        done
        stop_pid "$BG_PID"
        BG_PID=""
        cat "$WORK/bg.err" >&2
    fi
    stop_server
}

for r in $(seq 1 "$ROUNDS"); do
    for p in loki otlp syslog-tcp; do
        run_ingest "$p" "$r"
    done
done

# The background ingest must outlast the fan-out (FAN_EVENTS / 500 s plus
# the start): size it from the Loki rate just measured, with margin.
LOKI_RATE="$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["committed_per_s"]))' "$RAW/ingest-loki-1.json" 2>/dev/null || echo 100000)"
BG_RECORDS=$(( (LOKI_RATE * (FAN_EVENTS / 500 + 10)) / 1000 * 1000 ))
[ "$BG_RECORDS" -ge 10000 ] || BG_RECORDS=10000
for r in $(seq 1 "$ROUNDS"); do
    run_fanout "$r" 0
    run_fanout "$r" 1 "$BG_RECORDS"
done

# --- report ------------------------------------------------------------------
TAILCAST_ROOT="$ROOT" python3 - "$RAW" "$OUT/ingest-$STAMP" "$QUICK" "$PINNING" <<'PY'
import glob, json, os, platform, subprocess, sys
raw, out, quick, pinning = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
runs = {}
for path in sorted(glob.glob(os.path.join(raw, "*.json"))):
    name = os.path.basename(path)[:-5]
    with open(path) as f:
        runs[name] = json.load(f)
    la = os.path.join(raw, name + ".loadavg")
    if os.path.exists(la):
        runs[name]["loadavg_before"] = open(la).read().strip()
machine = {
    "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
    "cores": os.cpu_count(), "kernel": platform.release(),
    "memory": sh("free -h | awk '/Mem:/{print $2}'"),
    "tailcast": sh("git -C \"$TAILCAST_ROOT\" rev-parse --short HEAD"),
    "date": sh("date -u +%Y-%m-%dT%H:%MZ"),
    "pinning": pinning, "quick": quick,
}
with open(out + ".json", "w") as f:
    json.dump({"machine": machine, "runs": runs}, f, indent=2)

def k(v):
    return "%.1fk" % (v / 1000)
def ms(l):
    return "%.1f / %.1f" % (l["p50_ms"], l["p99_ms"]) if l else "?"
def flaws(r):
    bad = ["%s %s" % (x, r[x]) for x in ("lost", "duplicates", "reordered", "foreign", "resets", "subscriber_errors", "publish_errors", "push_errors") if r.get(x)]
    if r.get("problems") and not bad:
        bad = r["problems"]
    return (" **" + ", ".join(bad) + "**") if bad else ""

names = {"loki": "Loki protobuf + snappy", "otlp": "OTLP protobuf", "syslog-tcp": "syslog RFC 5424 over TCP (octet-counted)"}
md = ["# Ingest benchmark (%s)" % os.path.basename(out), "",
      "One client, batches of 1,000 records of 64-byte lines, each request sent when the previous one was answered; "
      "one SSE subscriber on the records' channel checks every record (loss must be 0). "
      "Committed: records answered 2xx per second, first request to last answer. "
      "Delivered: records the subscriber received per second, first push to last delivery. "
      "Latency: batch sent → record received.", "",
      "| protocol | run | load avg before | committed rec/s | delivered rec/s | loss | latency p50 / p99 ms | server CPU s / wall s | server µs CPU per record | server RSS end |",
      "|---|---|---|---|---|---|---|---|---|---|"]
for p in ("loki", "otlp", "syslog-tcp"):
    for name in sorted(n for n in runs if n.startswith("ingest-%s-" % p)):
        r = runs[name]
        rss = "%.1f MiB" % (r["rss_end_kib"] / 1024) if r.get("rss_end_kib") else "?"
        committed = "no answers ¹" if p == "syslog-tcp" else k(r["committed_per_s"])
        md.append("| %s | %s | %s | %s | %s | %d%s | %s | %s / %s | %s | %s |" % (
            names[p], name.rsplit("-", 1)[1], r.get("loadavg_before", "?"), committed,
            k(r["delivered_per_s"]), r["lost"], flaws(r), ms(r.get("latency")),
            r.get("server_cpu_s"), r.get("load_s"), r.get("server_cpu_us_per_record"), rss))
md += ["", "¹ Syslog over TCP is never answered: its figure is the delivered rate (the tool's own writes only fill socket buffers).",
       "", "Fan-out to other subscribers: 100 subscribers on another channel, 500 events/s, "
       "publish → receive latency; with and without a Loki ingest (as above, its own subscriber) running at the same time.", "",
       "| fan-out | run | load avg before | deliveries/s | rate reached | loss | latency p50 / p99 / p99.9 ms | background Loki committed / delivered rec/s |",
       "|---|---|---|---|---|---|---|---|"]
for kind, title in (("alone", "without ingest"), ("loki", "during Loki ingest")):
    for name in sorted(n for n in runs if n.startswith("fanout-%s-" % kind) and not n.endswith(".bg")):
        r = runs[name]
        l = r.get("latency") or {}
        bg = runs.get(name + ".bg")
        bgs = ("%s / %s%s" % (k(bg["committed_per_s"]), k(bg["delivered_per_s"]), flaws(bg))) if bg else "–"
        md.append("| %s | %s | %s | %s | %.0f/s | %d%s | %.2f / %.2f / %.2f | %s |" % (
            title, name.rsplit("-", 1)[1], r.get("loadavg_before", "?"), k(r["deliveries_per_s"]),
            r["rate_achieved"], r["lost"], flaws(r), l.get("p50_ms", 0), l.get("p99_ms", 0), l.get("p999_ms", 0), bgs))
md += ["", "Machine: %s, %s cores, %s RAM, Linux %s; %s; tailcast %s; %s." % (
    machine["cpu"], machine["cores"], machine["memory"], machine["kernel"], machine["pinning"],
    machine["tailcast"], machine["date"]), ""]
with open(out + ".md", "w") as f:
    f.write("\n".join(md))
print("\n".join(md))
PY
cp "$OUT/ingest-$STAMP.json" "$OUT/ingest-latest.json"
cp "$OUT/ingest-$STAMP.md" "$OUT/ingest-latest.md"
log "results: $OUT/ingest-$STAMP.{json,md} (copied to ingest-latest.*)"
