#!/usr/bin/env bash
# Scale-out benchmark, in one run on this machine:
#   memory  — one tailcast node, publish and subscribe on it;
#   redis   — two tailcast nodes sharing one redis-server (started here on a
#             free loopback port), publishing on node A, subscribing on node B;
#   cluster — the same two nodes on a local Redis Cluster (--redis-cluster;
#             3 primaries + 3 replicas started here, as tests/redis_cluster.rs
#             does); commands counted on the primary of tailcast's slot.
# Then the ceiling of that one primary: redis-benchmark runs the publish
# script itself (as many nodes would, pipelined), 1 and 100 events per call.
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
# Starts a 3+3 Redis Cluster on free ports; sets SEEDS (every node's URL),
# PRIMARY and PRIMARY_PID (the primary of the slot of `{tailcast}`).
start_cluster() {
    local ports=() nodes=() p
    declare -gA CPIDS=()
    for _ in 1 2 3 4 5 6; do
        p="$(free_port)"
        mkdir -p "$WORK/cluster-$p"
        # The bus port is given: the default (port + 10000) may be taken,
        # or above 65535.
        redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$(free_port)" \
            --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
            --save '' --appendonly no --dir "$WORK/cluster-$p" >"$WORK/cluster-$p.log" 2>&1 &
        PIDS+=("$!")
        CPIDS[$p]=$!
        ports+=("$p")
        nodes+=("127.0.0.1:$p")
    done
    for p in "${ports[@]}"; do
        for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$WORK/cluster-create.log"
    for p in "${ports[@]}"; do
        for _ in $(seq 200); do
            redis-cli -p "$p" CLUSTER INFO | grep -q cluster_state:ok && break
            sleep 0.05
        done
    done
    SEEDS="$(printf 'redis://%s,' "${nodes[@]}")"
    SEEDS="${SEEDS%,}"
    local slot owner
    slot="$(redis-cli -p "${ports[0]}" CLUSTER KEYSLOT '{tailcast}')"
    owner="$(redis-cli -p "${ports[0]}" CLUSTER NODES | awk -v s="$slot" '$3 ~ /master/ {
        for (i = 9; i <= NF; i++) { split($i, r, "-"); if (r[2] == "") r[2] = r[1];
            if (s + 0 >= r[1] + 0 && s + 0 <= r[2] + 0) { split($2, a, "@"); print a[1] } } }')"
    PRIMARY="${owner##*:}"
    PRIMARY_PID="${CPIDS[$PRIMARY]}"
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

        log "cluster / $name: $args"
        start_cluster
        pa="$(free_port)"
        pb="$(free_port)"
        start_node "$pa" --redis-cluster "$SEEDS" --node a "a=$WORK/own.log"
        pida=$NODE_PID
        start_node "$pb" --redis-cluster "$SEEDS" --node b "b=$WORK/own.log"
        pidb=$NODE_PID
        commandstats "$PRIMARY" "$WORK/cbefore-$name"
        "$LOAD" fanout --target "http://127.0.0.1:$pb" --pub-target "http://127.0.0.1:$pa" \
            --server-pid "$pida" --server-pid "$pidb" --server-pid "$PRIMARY_PID" \
            --label cluster --json-out "$WORK/cluster-$name.json" --check $args >/dev/null
        commandstats "$PRIMARY" "$WORK/cafter-$name"
        stop_all
    }
done < <(scenarios)

# The ceiling of the one primary that holds a deployment: the publish
# script run by redis-benchmark (50 clients, pipelines of 16: many nodes
# publishing at once), one event per call and 100 per call.
log "script ceiling on one cluster primary"
start_cluster
python3 - "$ROOT/src/hub/redis/scripts.rs" >"$WORK/publish.lua" <<'EOF_LUA'
import sys, re
text = open(sys.argv[1]).read()
print(re.search(r'pub const PUBLISH: &str = r#"(.*?)"#;', text, re.S).group(1))
EOF_LUA
SHA="$(redis-cli -p "$PRIMARY" SCRIPT LOAD "$(cat "$WORK/publish.lua")")"
redis-cli -p "$PRIMARY" SET '{tailcast}:bench-epoch' 'e:0' >/dev/null
DATA="$(printf 'x%.0s' $(seq 64))"
ceiling() { # events-per-call requests
    local per="$1" n="$2" events=()
    for _ in $(seq "$per"); do events+=(1 message "$DATA"); done
    redis-benchmark -p "$PRIMARY" -c 50 -P 16 -n "$n" --csv \
        EVALSHA "$SHA" 5 '{tailcast}:bench-epoch' '{tailcast}:bench-seq' '{tailcast}:bench-feed' '{tailcast}:bench-channels' '{tailcast}:bench-ch' \
        e:0 1000 10000 0 1 c 1000000 "${events[@]}" | tail -1 | cut -d, -f2 | tr -d '"'
}
if [ "$QUICK" = 1 ]; then N1=20000; N100=500; else N1=200000; N100=5000; fi
CALLS1="$(ceiling 1 "$N1")"
CALLS100="$(ceiling 100 "$N100")"
SEQ="$(redis-cli -p "$PRIMARY" GET '{tailcast}:bench-seq')"
printf '%s\n%s\n%s\n' "$CALLS1" "$CALLS100" "$SEQ" >"$WORK/ceiling"
stop_all

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
    clu = json.loads((work / f"cluster-{name}.json").read_text())
    raw[name] = {"memory": mem, "redis": red, "cluster": clu}
    commands = {}
    for label, r, pre in (("redis", red, ""), ("cluster", clu, "c")):
        before, after = stats(work / f"{pre}before-{name}"), stats(work / f"{pre}after-{name}")
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        delta = {k: v for k, v in delta.items() if v > 0}
        published = max(r["published"], 1)
        per_publish = sum(delta.values()) / published
        script = delta.get("evalsha", 0) + delta.get("eval", 0)
        inside = sum(delta.get(k, 0) for k in ("get", "zscore", "zcard", "incrby", "xadd", "zadd", "pexpire"))
        raw[name][f"{label}_commands"] = delta
        commands[label] = f"{per_publish:.2f} ({script / published:.2f} script + {inside / published:.2f} inside, {delta.get('xread', 0)} XREAD)"
    lat = lambda r, q: (r.get("latency") or {}).get(q)
    for label, r in (("memory", mem), ("redis", red), ("cluster", clu)):
        rows.append((name, label, r["subscribers"], r["published"], r["rate_achieved"],
                     r["deliveries_per_s"], lat(r, "p50_ms"), lat(r, "p99_ms"),
                     r["lost"] + r["duplicates"] + r["reordered"],
                     commands.get(label, "")))
    raw[name]["ratio_deliveries"] = red["deliveries_per_s"] / max(mem["deliveries_per_s"], 1e-9)
    raw[name]["ratio_cluster"] = clu["deliveries_per_s"] / max(red["deliveries_per_s"], 1e-9)

head = "| scenario | hub | subscribers | events | publish/s | deliveries/s | p50 ms | p99 ms | lost+dup+reordered | Redis commands per publish |\n|---|---|---|---|---|---|---|---|---|---|\n"
body = "".join(
    f"| {n} | {h} | {s} | {e} | {r:,.0f} | {d:,.0f} | {p50} | {p99} | {bad} | {c} |\n"
    for n, h, s, e, r, d, p50, p99, bad, c in rows)
ratios = "".join(f"- {n}: Redis deliveries/s = {v['ratio_deliveries'] * 100:.0f} % of memory; cluster = {v['ratio_cluster'] * 100:.0f} % of single-server Redis\n" for n, v in raw.items())
calls1, calls100, seq = (work / "ceiling").read_text().split()
calls1, calls100 = float(calls1), float(calls100)
raw["ceiling"] = {"calls_per_s_1_event": calls1, "calls_per_s_100_events": calls100,
                  "events_per_s_100_events": calls100 * 100, "numbers_given": int(seq)}
ceiling = (f"\nOne primary's ceiling (redis-benchmark running the publish script, 50 clients, pipeline 16): "
           f"{calls1:,.0f} publishes/s at 1 event per call; {calls100:,.0f} calls/s = {calls100 * 100:,.0f} events/s at 100 events per call.\n")
text = head + body + "\n" + ratios + ceiling
pathlib.Path(out + ".md").write_text(text)
pathlib.Path(out + ".json").write_text(json.dumps(raw, indent=1))
print(text)
EOF
log "written $OUT.md and $OUT.json"
