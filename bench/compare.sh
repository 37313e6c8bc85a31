#!/usr/bin/env bash
# Runs tailcast and its peers side by side, in one run, on this machine:
# Nchan (Debian's nginx + libnginx-mod-nchan, one worker, config in
# bench/peers/nchan) and the tutorial stack (FastAPI + sse-starlette +
# uvicorn, app in bench/peers/fastapi). Each server is started fresh for
# each scenario, pinned to core 0; the load tool is pinned to core 1.
# Loopback only. Writes bench/results/<stamp>.json and .md and copies them
# to bench/results/latest.{json,md}.
#
# TLS and HTTP/2 variants (tailcast and Nchan; certificate made here with
# openssl): fanout1k-tls, idle10k-tls (HTTP/1.1 over TLS), fanout1k-h2,
# idle10k-h2 (HTTP/2 over TLS, 100 streams per connection).
# fanout100-paced: S1's 100 subscribers at 400 events/s asked, a rate every
# server reaches, so that latencies compare like for like (in fanout100 each
# server's publisher goes as fast as that server answers).
#
# Usage: bench/compare.sh [--quick] [--servers "tailcast nchan fastapi"]
#                         [--scenarios "fanout100 fanout1k fanout10k idle10k idle19k follow
#                                       fanout1k-tls fanout1k-h2 idle10k-tls idle10k-h2"]
#                         [--soak SECONDS] [--out DIR]
#   --quick   tiny sizes, a smoke test of the script itself
#   --soak    also run tailcast 100 subscribers at 1,000 events/s for
#             SECONDS, sampling its RSS every 10 s (memory flatness)
# TAILCAST_BIN=path runs that tailcast binary (e.g. an older build kept
# aside, to compare builds in one session) instead of building this
# checkout; tailcast-load is still built from it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SERVERS="tailcast nchan fastapi"
SCENARIOS="fanout100 fanout1k fanout10k idle10k idle19k follow"
QUICK=0
SOAK=0
OUT="$ROOT/bench/results"
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --servers) SERVERS="$2"; shift ;;
        --scenarios) SCENARIOS="$2"; shift ;;
        --soak) SOAK="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

LOAD="$CARGO_TARGET_DIR/release/tailcast-load"
TAILCAST="${TAILCAST_BIN:-$CARGO_TARGET_DIR/release/tailcast}"
VENV="${TAILCAST_BENCH_VENV:-$CARGO_TARGET_DIR/peers-venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tailcast-compare.XXXXXX")"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RAW="$WORK/raw"
mkdir -p "$RAW" "$OUT"
SERVER_PID=""

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        local i
        for i in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}

cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "[compare] $*" >&2; }

# --- tools and peers -------------------------------------------------------
log "building tailcast and tailcast-load (release)"
if [ -z "${TAILCAST_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet -p tailcast --bin tailcast)
fi
(cd "$ROOT" && cargo build --release --quiet -p tailcast-load)

need_nchan() { [[ " $SERVERS " == *" nchan "* ]]; }
need_fastapi() { [[ " $SERVERS " == *" fastapi "* ]]; }
if need_nchan && ! [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    if [ "$(id -u)" = 0 ]; then
        log "installing nginx and libnginx-mod-nchan from Debian"
        apt-get install -y -q nginx-light libnginx-mod-nchan >/dev/null || {
            apt-get update -q >/dev/null && apt-get install -y -q nginx-light libnginx-mod-nchan >/dev/null
        }
    else
        echo "Nchan is missing: apt-get install nginx-light libnginx-mod-nchan" >&2
        exit 1
    fi
fi
if need_fastapi && ! [ -x "$VENV/bin/uvicorn" ]; then
    log "creating $VENV with the tutorial stack from PyPI"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r "$ROOT/bench/peers/fastapi/requirements.txt"
fi

if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
else
    log "fewer than 2 cores or no taskset: running unpinned"
    PIN_SERVER=()
    PIN_LOAD=()
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # port: bounded wait until it accepts connections
    local i
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "server did not listen on port $1 within 10 s" >&2
    return 1
}

# --- servers: start_<name> sets PORT, SERVER_PID and PIDS (for RSS) --------
# A CA and a certificate for localhost, for the TLS scenarios.
make_certificate() {
    [ -f "$WORK/pki/cert.pem" ] && return 0
    mkdir -p "$WORK/pki"
    (
        cd "$WORK/pki"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -subj "/CN=tailcast bench CA" -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=localhost" -keyout key.pem -out cert.csr 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf
        openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
            -extfile ext.cnf -out cert.pem 2>/dev/null
    )
}

start_tailcast() { # [tls]
    local dir="$WORK/tailcast" tls=() scheme=http
    rm -rf "$dir" && mkdir -p "$dir" && : > "$dir/bench.log"
    FOLLOW_FILE="$dir/bench.log"
    if [ "${1:-}" = tls ]; then
        make_certificate
        tls=(--tls-cert "$WORK/pki/cert.pem" --tls-key "$WORK/pki/key.pem")
        scheme=https
    fi
    "${PIN_SERVER[@]}" "$TAILCAST" serve --addr 127.0.0.1:0 --history 10000 "${tls[@]}" \
        "bench=$dir/bench.log" > "$dir/out" 2> "$dir/err" &
    SERVER_PID=$!
    local i
    PORT=""
    for i in $(seq 1 100); do
        PORT="$(sed -n "s#^tailcast listening on $scheme://127.0.0.1:\([0-9]*\).*#\1#p" "$dir/out")"
        [ -n "$PORT" ] && break
        sleep 0.1
    done
    [ -n "$PORT" ] || { cat "$dir/err" >&2; return 1; }
    PIDS=("$SERVER_PID")
}

start_nchan() { # [tls]
    local dir="$WORK/nchan" listen="" tls=""
    rm -rf "$dir" && mkdir -p "$dir"
    PORT="$(free_port)"
    if [ "${1:-}" = tls ]; then
        make_certificate
        listen="ssl http2"
        tls="ssl_certificate $WORK/pki/cert.pem; ssl_certificate_key $WORK/pki/key.pem;"
        tls+=" ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    sed -e "s#@PREFIX@#$dir#g" -e "s#@PORT@#$PORT#g" -e "s#@LISTEN@#$listen#g" -e "s#@TLS@#$tls#g" \
        "$ROOT/bench/peers/nchan/nginx.conf.in" > "$dir/nginx.conf"
    "${PIN_SERVER[@]}" nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2> "$dir/stderr" &
    SERVER_PID=$!
    wait_port "$PORT"
    local worker="" i
    for i in $(seq 1 50); do
        worker="$(pgrep -P "$SERVER_PID" | head -1 || true)"
        [ -n "$worker" ] && break
        sleep 0.1
    done
    PIDS=("$SERVER_PID")
    [ -n "$worker" ] && PIDS+=("$worker")
}

start_fastapi() {
    PORT="$(free_port)"
    (cd "$ROOT/bench/peers/fastapi" && exec "${PIN_SERVER[@]}" "$VENV/bin/uvicorn" app:app \
        --host 127.0.0.1 --port "$PORT" --no-access-log --log-level warning --backlog 4096) \
        2> "$WORK/fastapi.err" &
    SERVER_PID=$!
    wait_port "$PORT"
    PIDS=("$SERVER_PID")
}

# --- scenarios ---------------------------------------------------------------
# name -> load tool arguments (full size, then --quick size)
scenario_args() {
    local s="$1"
    if [ "$QUICK" = 1 ]; then
        case "$s" in
            fanout100) echo "fanout --subscribers 10 --events 200" ;;
            fanout100-paced) echo "fanout --subscribers 10 --events 200 --rate 500" ;;
            fanout1k) echo "fanout --subscribers 50 --events 100 --rate 500" ;;
            fanout10k) echo "fanout --subscribers 200 --events 20 --rate 100" ;;
            idle10k) echo "idle --connections 200 --settle 1" ;;
            idle19k) echo "idle --connections 300 --settle 1" ;;
            follow) echo "follow --subscribers 10 --events 200 --rate 1000" ;;
            soak) echo "fanout --subscribers 10 --events 2000 --rate 1000 --rss-every 1" ;;
            fanout1k-tls) echo "fanout --subscribers 50 --events 100 --rate 500" ;;
            fanout1k-h2) echo "fanout --subscribers 50 --events 100 --rate 500 --h2-streams 10" ;;
            idle10k-tls) echo "idle --connections 200 --settle 1" ;;
            idle10k-h2) echo "idle --connections 200 --settle 1 --h2-streams 100" ;;
        esac
        return
    fi
    case "$s" in
        fanout100) echo "fanout --subscribers 100 --events 10000 --drain-timeout 300" ;;
        fanout100-paced) echo "fanout --subscribers 100 --events 10000 --rate 400 --drain-timeout 300" ;;
        fanout1k) echo "fanout --subscribers 1000 --events 2000 --rate 1000 --drain-timeout 300" ;;
        fanout10k) echo "fanout --subscribers 10000 --events 200 --rate 100 --drain-timeout 400" ;;
        idle10k) echo "idle --connections 10000 --settle 3" ;;
        idle19k) echo "idle --connections 19000 --settle 3" ;;
        follow) echo "follow --subscribers 100 --events 10000 --rate 1000" ;;
        soak) echo "fanout --subscribers 100 --events $((SOAK * 1000)) --rate 1000 --rss-every 10" ;;
        fanout1k-tls) echo "fanout --subscribers 1000 --events 2000 --rate 1000 --drain-timeout 300" ;;
        fanout1k-h2) echo "fanout --subscribers 1000 --events 2000 --rate 1000 --drain-timeout 300 --h2-streams 100" ;;
        idle10k-tls) echo "idle --connections 10000 --settle 3" ;;
        idle10k-h2) echo "idle --connections 10000 --settle 3 --h2-streams 100" ;;
    esac
}

run_one() { # server scenario
    local server="$1" scenario="$2" args extra=()
    args="$(scenario_args "$scenario")"
    if [[ "$scenario" == follow* || "$scenario" == soak ]] && [ "$server" != tailcast ]; then
        return 0
    fi
    if [[ "$scenario" == *-tls || "$scenario" == *-h2 ]] && [ "$server" = fastapi ]; then
        return 0
    fi
    local target="http://127.0.0.1" tls=()
    if [[ "$scenario" == *-tls || "$scenario" == *-h2 ]]; then
        "start_$server" tls
        target="https://localhost"
        tls=(--ca "$WORK/pki/ca.pem")
    else
        "start_$server"
    fi
    local pidargs=() p
    for p in "${PIDS[@]}"; do pidargs+=(--server-pid "$p"); done
    if [ "$scenario" = follow ]; then
        extra=(--file "$FOLLOW_FILE" --sub-path "/logs/bench?tail=0")
    fi
    log "$server / $scenario: $args"
    # shellcheck disable=SC2086
    if ! "${PIN_LOAD[@]}" "$LOAD" $args --target "$target:$PORT" "${tls[@]}" --label "$server" \
        "${pidargs[@]}" "${extra[@]}" --json-out "$RAW/$server-$scenario.json" > /dev/null; then
        log "$server / $scenario: the run reported problems (kept in the results)"
    fi
    stop_server
}

for scenario in $SCENARIOS; do
    for server in $SERVERS; do
        run_one "$server" "$scenario"
    done
done
if [ "$SOAK" -gt 0 ] && [[ " $SERVERS " == *" tailcast "* ]]; then
    run_one tailcast soak
fi

# --- report ------------------------------------------------------------------
TAILCAST_ROOT="$ROOT" python3 - "$RAW" "$OUT/$STAMP" "$QUICK" <<'PY'
import json, os, platform, subprocess, sys
raw, out, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
runs = {}
for name in sorted(os.listdir(raw)):
    with open(os.path.join(raw, name)) as f:
        r = json.load(f)
    runs[name[:-5]] = r
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return ""
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
machine = {
    "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
    "memory": sh("free -h | awk '/Mem:/{print $2}'"),
    "nofile": sh("ulimit -n"),
    "nginx": sh("nginx -v 2>&1"),
    "nchan": sh("dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null"),
    "tailcast": sh("git -C \"$TAILCAST_ROOT\" rev-parse --short HEAD"),
    "pinning": "server on core 0, load tool on core 1 (taskset)",
    "quick": quick,
}
doc = {"machine": machine, "runs": runs}
with open(out + ".json", "w") as f:
    json.dump(doc, f, indent=2)
servers = [s for s in ("tailcast", "nchan", "fastapi") if any(k.startswith(s + "-") for k in runs)]
titles = {"tailcast": "tailcast", "nchan": "Nchan (nginx, 1 worker)", "fastapi": "FastAPI + sse-starlette"}
rows = [
    ("fanout100", "100 subscribers, 10,000 events, max rate"),
    ("fanout100-paced", "100 subscribers, 10,000 events, 400/s asked (a rate every server reaches: latency like for like)"),
    ("fanout1k", "1,000 subscribers, 2,000 events, 1,000/s asked"),
    ("fanout10k", "10,000 subscribers, 200 events, 100/s asked"),
    ("idle10k", "10,000 idle connections: server memory per connection"),
    ("idle19k", "19,000 idle connections: server memory per connection"),
    ("follow", "followed file, 1,000 lines/s, 100 subscribers"),
    ("soak", "soak: 100 subscribers, 1,000 events/s"),
    ("fanout1k-tls", "1,000 subscribers over TLS (HTTP/1.1), 2,000 events, 1,000/s asked"),
    ("fanout1k-h2", "1,000 subscribers over TLS HTTP/2 (100 streams per connection), 2,000 events, 1,000/s asked"),
    ("idle10k-tls", "10,000 idle TLS (HTTP/1.1) connections: server memory per connection"),
    ("idle10k-h2", "10,000 idle HTTP/2 streams over TLS, 100 per connection: server memory per stream"),
]
if quick:
    rows = [(k, k + " (quick sizes)") for k, _ in rows]
def cell(r):
    if r is None:
        return "–"
    bad = []
    for k in ("lost", "duplicates", "reordered", "foreign", "resets", "subscriber_errors", "publish_errors"):
        if r.get(k):
            bad.append("%s %s" % (k, r[k]))
    if r["mode"] == "idle":
        v = r.get("rss_per_connection_kib")
        s = "–" if v is None else "%.1f KiB" % v
    else:
        lat = r.get("latency") or {}
        s = "%.1fk, %s / %s ms" % (r["deliveries_per_s"] / 1000, fmt(lat.get("p50_ms")), fmt(lat.get("p99_ms")))
        if r.get("rate_asked"):
            s += " (rate %.0f/s)" % r["rate_achieved"]
        if r["mode"] == "fanout" and r.get("rss_drift_pct") is not None:
            s += ", RSS drift %.1f %%" % r["rss_drift_pct"]
    if bad or r.get("problems"):
        s += " **" + (", ".join(bad) or "; ".join(r["problems"])) + "**"
    return s
def fmt(v):
    if v is None:
        return "?"
    return ("%.2f" % v) if v < 10 else ("%.0f" % v)
lines = ["| scenario | " + " | ".join(titles[s] for s in servers) + " |",
         "|---" * (len(servers) + 1) + "|"]
for key, title in rows:
    if not any(("%s-%s" % (s, key)) in runs for s in servers):
        continue
    lines.append("| %s | %s |" % (title, " | ".join(cell(runs.get("%s-%s" % (s, key))) for s in servers)))
md = ["# tailcast vs peers (%s)" % os.path.basename(out), "",
      "Fan-out cells: deliveries/s, publish→receive latency p50 / p99; idle cells: server RSS growth per connection.", "",
      *lines, "",
      "Machine: %s, %s cores, %s RAM, Linux %s; %s; nofile %s; %s, libnginx-mod-nchan %s; tailcast %s." % (
          machine["cpu"], machine["cores"], machine["memory"], machine["kernel"], machine["pinning"],
          machine["nofile"], machine["nginx"], machine["nchan"], machine["tailcast"]), ""]
with open(out + ".md", "w") as f:
    f.write("\n".join(md))
print("\n".join(md))
PY
cp "$OUT/$STAMP.json" "$OUT/latest.json"
cp "$OUT/$STAMP.md" "$OUT/latest.md"
log "results: $OUT/$STAMP.json and $OUT/$STAMP.md (copied to latest.*)"
