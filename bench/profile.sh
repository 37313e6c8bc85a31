#!/usr/bin/env bash
# Where the server's core goes, and how many syscalls an event costs, for
# tailcast and Nchan in the two single-publisher scenarios of issue 26:
#   s1: 100 subscribers, 10,000 events, one sequential publisher at max rate
#   s2: 1,000 subscribers, 2,000 events, 1,000/s asked
# Each server is started fresh per scenario and pinned to core 0, the load
# tool to core 1, loopback only. Per server and scenario, two runs: one
# under `perf stat` counting every syscall the server's processes enter
# (syscalls:sys_enter_*), one under `perf record -g` (tailcast only; build
# it with `cargo build --profile profiling` so that it has symbols).
#
# Usage: bench/profile.sh [--servers "tailcast nchan"] [--scenarios "s1 s2"]
#                         [--out DIR] [--no-record]
# TAILCAST_BIN=path (default target/profiling/tailcast) and
# TAILCAST_LOAD=path (default target/release/tailcast-load) pick the
# binaries. Writes DIR/<server>-<scenario>.{json,syscalls.txt,perf.txt}
# (default DIR: bench/results/profile-<UTC stamp>) and prints a summary.
# Needs perf (Debian: linux-perf) and permission to use it (root, or
# kernel.perf_event_paranoid <= 1 and tracefs readable).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVERS="tailcast nchan"
SCENARIOS="s1 s2"
RECORD=1
OUT="$ROOT/bench/results/profile-$(date -u +%Y%m%dT%H%M%SZ)"
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) SERVERS="$2"; shift ;;
        --scenarios) SCENARIOS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-record) RECORD=0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
TAILCAST="${TAILCAST_BIN:-$ROOT/target/profiling/tailcast}"
LOAD="${TAILCAST_LOAD:-$ROOT/target/release/tailcast-load}"
command -v perf >/dev/null || { echo "perf is missing: apt-get install linux-perf" >&2; exit 1; }
[ -x "$TAILCAST" ] || { echo "no $TAILCAST: cargo build --profile profiling" >&2; exit 1; }
[ -x "$LOAD" ] || { echo "no $LOAD: cargo build --release -p tailcast-load" >&2; exit 1; }
mkdir -p "$OUT"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tailcast-profile.XXXXXX")"
SERVER_PID=""
PERF_PID=""
# The syscalls counted one by one (perf takes long to open and close all of
# syscalls:sys_enter_*), and raw_syscalls:sys_enter for the total.
SYSCALL_EVENTS="raw_syscalls:sys_enter"
for s in write writev sendto sendmsg read readv recvfrom recvmsg epoll_wait epoll_pwait \
    epoll_ctl futex accept4 close shutdown sched_yield mmap munmap madvise brk mprotect \
    ioctl setsockopt getsockopt getpid; do
    SYSCALL_EVENTS+=",syscalls:sys_enter_$s"
done

stop_pid() { # pid
    kill -INT "$1" 2>/dev/null || true
    local i
    for i in $(seq 1 600); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    [ -n "$PERF_PID" ] && stop_pid "$PERF_PID"
    [ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
log() { echo "[profile] $*" >&2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start_tailcast() {
    local dir="$WORK/tailcast" i
    rm -rf "$dir" && mkdir -p "$dir" && : > "$dir/bench.log"
    taskset -c 0 "$TAILCAST" serve --addr 127.0.0.1:0 --history 10000 "bench=$dir/bench.log" \
        > "$dir/out" 2> "$dir/err" &
    SERVER_PID=$!
    PORT=""
    for i in $(seq 1 100); do
        PORT="$(sed -n 's#^tailcast listening on http://127.0.0.1:\([0-9]*\).*#\1#p' "$dir/out")"
        [ -n "$PORT" ] && break
        sleep 0.1
    done
    [ -n "$PORT" ] || { cat "$dir/err" >&2; return 1; }
    PIDS=("$SERVER_PID")
}

start_nchan() {
    local dir="$WORK/nchan" i worker=""
    rm -rf "$dir" && mkdir -p "$dir"
    PORT="$(free_port)"
    sed -e "s#@PREFIX@#$dir#g" -e "s#@PORT@#$PORT#g" -e "s#@LISTEN@##g" -e "s#@TLS@##g" \
        "$ROOT/bench/peers/nchan/nginx.conf.in" > "$dir/nginx.conf"
    taskset -c 0 nginx -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2> "$dir/stderr" &
    SERVER_PID=$!
    for i in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
        sleep 0.1
    done
    for i in $(seq 1 50); do
        worker="$(pgrep -P "$SERVER_PID" | head -1 || true)"
        [ -n "$worker" ] && break
        sleep 0.1
    done
    PIDS=("$SERVER_PID")
    [ -n "$worker" ] && PIDS+=("$worker")
}

load_args() {
    case "$1" in
        s1) echo "fanout --subscribers 100 --events ${S1_EVENTS:-10000} --drain-timeout 120" ;;
        s2) echo "fanout --subscribers 1000 --events 2000 --rate 1000 --drain-timeout 120" ;;
    esac
}

run() { # server scenario mode(stat|record)
    local server="$1" scenario="$2" mode="$3" pids p pidargs=()
    "start_$server"
    pids="$(IFS=,; echo "${PIDS[*]}")"
    for p in "${PIDS[@]}"; do pidargs+=(--server-pid "$p"); done
    local base="$OUT/$server-$scenario"
    if [ "$mode" = stat ]; then
        env --default-signal=INT taskset -c 1 perf stat -x, -e "$SYSCALL_EVENTS" -p "$pids" -o "$base.perfstat.csv" 2> "$base.perfstat.err" &
    else
        env --default-signal=INT taskset -c 1 perf record -q -F 1999 -g -p "$pids" -o "$WORK/perf.data" 2>/dev/null &
    fi
    PERF_PID=$!  # (env: background jobs of a script ignore SIGINT, which stops perf)
    sleep 0.5
    # shellcheck disable=SC2046
    taskset -c 1 "$LOAD" $(load_args "$scenario") --target "http://127.0.0.1:$PORT" \
        --label "$server" "${pidargs[@]}" --json-out "$base.$mode.json" >&2 || true
    stop_pid "$PERF_PID"
    PERF_PID=""
    stop_pid "$SERVER_PID"
    SERVER_PID=""
    if [ "$mode" = stat ]; then
        # The total first, then the nonzero counts, most first.
        awk -F, '$3 == "raw_syscalls:sys_enter" { print $1, "total" }' "$base.perfstat.csv" \
            > "$base.syscalls.txt"
        awk -F, '$1 ~ /^[0-9]+$/ && $1 > 0 && $3 ~ /^syscalls:/ {
            sub("syscalls:sys_enter_", "", $3); print $1, $3 }' "$base.perfstat.csv" |
            sort -rn >> "$base.syscalls.txt"
    else
        perf report -i "$WORK/perf.data" --no-children --stdio --percent-limit 0.5 \
            --sort symbol 2>/dev/null | grep -v '^$' | grep -v '^#' | grep '%' | sed 's/ \{3,\}/ /g' > "$base.perf.txt" || true
        perf report -i "$WORK/perf.data" --no-children --stdio -g none --percent-limit 0.01 \
            --sort dso,symbol 2>/dev/null | grep '%' | sed 's/  */ /g' > "$base.flat.txt" || true
    fi
}

for scenario in $SCENARIOS; do
    for server in $SERVERS; do
        log "$server / $scenario: syscall counts"
        run "$server" "$scenario" stat
        if [ "$RECORD" = 1 ] && [ "$server" = tailcast ]; then
            log "$server / $scenario: perf record"
            run "$server" "$scenario" record
        fi
    done
done

# Summary: per server and scenario, syscalls per published event and per
# delivery, the top syscalls, and the server CPU per delivery of each run.
python3 - "$OUT" <<'PY' | tee "$OUT/summary.md"
import json, os, sys
out = sys.argv[1]
rows = []
for name in sorted(os.listdir(out)):
    if not name.endswith(".stat.json"):
        continue
    key = name[: -len(".stat.json")]
    r = json.load(open(os.path.join(out, name)))
    sc = [l.split() for l in open(os.path.join(out, key + ".syscalls.txt"))]
    total = int(sc[0][0])
    pub, dl = max(r["published"], 1), max(r["deliveries"], 1)
    top = ", ".join(f"{n} {int(c) / pub:.1f}" for c, n in sc[1:6])
    cpu = r.get("server_cpu_s")
    rows.append(f"| {key} | {r['deliveries_per_s']:.0f} | {r['rate_achieved']:.0f} | "
                f"{cpu} s, {cpu * 1e6 / dl:.2f} µs | {total / pub:.1f} | {total / dl:.3f} | {top} |")
print("| server-scenario | deliveries/s | publishes/s | server CPU (per delivery) | syscalls per event | per delivery | top syscalls per event |")
print("|---|---|---|---|---|---|---|")
print("\n".join(rows))

# Where the server's core went (perf record, self time), by part.
parts = [
    ("kernel: socket writes and loopback TCP", lambda d, s: d == "[kernel.kallsyms]"),
    ("HTTP/1 publish path (hyper, axum, router, publish handler, JSON)",
     lambda d, s: any(k in s for k in ("hyper", "axum", "matchit", "tower", "http::publish",
                                        "serde_json", "httparse", "http::request", "http::header"))),
    ("hub (commit, batches)", lambda d, s: "tailcast::hub" in s),
    ("SSE body and lean path (frames, chunk heads)",
     lambda d, s: any(k in s for k in ("sse_conn", "sse_body", "poll_frame", "LowerHex", "unfold"))),
    ("tokio wake-ups and notifications (Notify, wakers, cancellation, watch)",
     lambda d, s: any(k in s for k in ("tokio::sync", "waker", "cancellation", "Notified", "notify"))),
    ("tokio scheduler and task polls", lambda d, s: "tokio::runtime" in s or "task_tracker" in s
        or "Either" in s),
    ("allocator and memcpy (libc)", lambda d, s: d.startswith("libc")),
]
for name in sorted(os.listdir(out)):
    if not name.endswith(".flat.txt"):
        continue
    sums = {p: 0.0 for p, _ in parts}
    other = 0.0
    for line in open(os.path.join(out, name)):
        f = line.split(" ", 4)
        if len(f) < 5 or not f[1].endswith("%"):
            continue
        pct, dso, sym = float(f[1][:-1]), f[2], f[4]
        for p, test in parts:
            if test(dso, sym):
                sums[p] += pct
                break
        else:
            other += pct
    print(f"\n{name[: -len('.flat.txt')]}: " + "; ".join(f"{p} {v:.1f} %" for p, v in sums.items())
          + f"; other user space {other:.1f} %")
PY
log "results in $OUT"
