#!/usr/bin/env bash
# Scale-out benchmark, in one run on this machine:
#   memory  — one tailcast node, publish and subscribe on it;
#   redis   — two tailcast nodes sharing one redis-server (started here on a
#             free loopback port), publishing on node A, subscribing on node B.
# For each scenario: deliveries/s, p50/p99 latency (publish to delivery),
# publish rate, and Redis commands per publish from `INFO commandstats`
# (all commands, then the publish script's own). Writes
# bench/results/redis-<time>.json and .md.
#
#   bench/redis.sh [--quick]        (PROFILE=debug: unoptimised builds, to
#                                    check the script itself)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1

PROFILE="${PROFILE:-release}"
if [ "$PROFILE" = release ]; then
    cargo build --release --quiet -p tailcast --bin tailcast
    cargo build --release --quiet -p tailcast-load
else
    cargo build --quiet -p tailcast --bin tailcast
    cargo build --quiet -p tailcast-load
fi
BIN="$ROOT/target/$PROFILE/tailcast"
LOAD="$ROOT/target/$PROFILE/tailcast-load"
command -v redis-server >/dev/null || { echo "error: redis-server is not installed" >&2; exit 1; }

WORK="$(mktemp -d)"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="$ROOT/bench/results/redis-$STAMP"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '== %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_health() {
    for _ in $(seq 400); do
        curl -sf "http://127.0.0.1:$1/health" >/dev/null && return 0
        sleep 0.05
    done
    echo "error: node on port $1 did not become healthy" >&2
    return 1
}
start_node() { # port args... ; sets NODE_PID
    local port="$1"
    shift
    "$BIN" serve --addr "127.0.0.1:$port" "$@" >"$WORK/node-$port.out" 2>"$WORK/node-$port.err" &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    wait_health "$port"
}
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    PIDS=()
}
commandstats() { # port file
    redis-cli -p "$1" INFO commandstats | tr -d '\r' | grep '^cmdstat_' >"$2"
}

scenarios() {
    if [ "$QUICK" = 1 ]; then
        echo "publish|--subscribers 1 --events 500"
        echo "fanout1k|--subscribers 50 --events 100 --rate 500"
        echo "fanout10k|--subscribers 200 --events 20 --rate 100"
    else
        echo "publish|--subscribers 1 --events 5000"
        echo "fanout1k|--subscribers 1000 --events 2000 --rate 1000 --drain-timeout 300"
        echo "fanout10k|--subscribers 10000 --events 200 --rate 100 --drain-timeout 400"
    fi
}

touch "$WORK/own.log"
while IFS='|' read -r name args; do
    # shellcheck disable=SC2086
    {
        log "memory / $name: $args"
        port="$(free_port)"
        start_node "$port" "app-$port=$WORK/own.log"
        "$LOAD" fanout --target "http://127.0.0.1:$port" --server-pid "$NODE_PID" \
            --label memory --json-out "$WORK/memory-$name.json" --check $args >/dev/null
        stop_all

        log "redis / $name: $args"
        rport="$(free_port)"
        redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
        PIDS+=("$!")
        rpid=$!
        for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.05; done
        pa="$(free_port)"
        pb="$(free_port)"
        start_node "$pa" --redis "redis://127.0.0.1:$rport" --node a "a=$WORK/own.log"
        pida=$NODE_PID
        start_node "$pb" --redis "redis://127.0.0.1:$rport" --node b "b=$WORK/own.log"
        pidb=$NODE_PID
        commandstats "$rport" "$WORK/before-$name"
        "$LOAD" fanout --target "http://127.0.0.1:$pb" --pub-target "http://127.0.0.1:$pa" \
            --server-pid "$pida" --server-pid "$pidb" --server-pid "$rpid" \
            --label redis --json-out "$WORK/redis-$name.json" --check $args >/dev/null
        commandstats "$rport" "$WORK/after-$name"
        stop_all
    }
done < <(scenarios)

python3 - "$WORK" "$OUT" <<'EOF'
import json, sys, pathlib
work, out = pathlib.Path(sys.argv[1]), sys.argv[2]

def stats(path):
    calls = {}
    for line in path.read_text().splitlines():
        name, rest = line.split(":", 1)
        fields = dict(kv.split("=") for kv in rest.split(","))
        calls[name.removeprefix("cmdstat_")] = int(fields["calls"])
    return calls

rows, raw = [], {}
names = sorted({p.stem.split("-", 1)[1] for p in work.glob("memory-*.json")},
               key=lambda n: ["publish", "fanout1k", "fanout10k"].index(n))
for name in names:
    mem = json.loads((work / f"memory-{name}.json").read_text())
    red = json.loads((work / f"redis-{name}.json").read_text())
    before, after = stats(work / f"before-{name}"), stats(work / f"after-{name}")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta = {k: v for k, v in delta.items() if v > 0}
    published = max(red["published"], 1)
    per_publish = sum(delta.values()) / published
    script = delta.get("evalsha", 0) + delta.get("eval", 0)
    inside = sum(delta.get(k, 0) for k in ("get", "zscore", "zcard", "incrby", "xadd", "zadd", "pexpire"))
    raw[name] = {"memory": mem, "redis": red, "redis_commands": delta}
    lat = lambda r, q: (r.get("latency") or {}).get(q)
    for label, r in (("memory", mem), ("redis", red)):
        rows.append((name, label, r["subscribers"], r["published"], r["rate_achieved"],
                     r["deliveries_per_s"], lat(r, "p50_ms"), lat(r, "p99_ms"),
                     r["lost"] + r["duplicates"] + r["reordered"],
                     f"{per_publish:.2f} ({script / published:.2f} script + {inside / published:.2f} inside, {delta.get('xread', 0)} XREAD)" if label == "redis" else ""))
    raw[name]["ratio_deliveries"] = red["deliveries_per_s"] / max(mem["deliveries_per_s"], 1e-9)

head = "| scenario | hub | subscribers | events | publish/s | deliveries/s | p50 ms | p99 ms | lost+dup+reordered | Redis commands per publish |\n|---|---|---|---|---|---|---|---|---|---|\n"
body = "".join(
    f"| {n} | {h} | {s} | {e} | {r:,.0f} | {d:,.0f} | {p50} | {p99} | {bad} | {c} |\n"
    for n, h, s, e, r, d, p50, p99, bad, c in rows)
ratios = "".join(f"- {n}: Redis deliveries/s = {v['ratio_deliveries'] * 100:.0f} % of memory\n" for n, v in raw.items())
text = head + body + "\n" + ratios
pathlib.Path(out + ".md").write_text(text)
pathlib.Path(out + ".json").write_text(json.dumps(raw, indent=1))
print(text)
EOF
log "written $OUT.md and $OUT.json"
