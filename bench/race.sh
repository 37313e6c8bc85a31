#!/usr/bin/env bash
# Two tailcast builds and Nchan, alternated, in one session: per round,
# `bench/compare.sh` runs the old build, the new build and Nchan one after
# the other on the same scenarios, so that a busy machine weighs on all
# three alike. Prints, per scenario and run, deliveries/s, p50 / p99, the
# publish rate reached and the server's CPU time per delivery (the steadier
# figure on a shared machine), and writes it to OUT/race.md with the raw
# reports in OUT/<round>-<build>/.
#
# Usage: OLD=path/to/old/tailcast NEW=path/to/new/tailcast \
#          bench/race.sh [--rounds N] [--scenarios "fanout100 fanout1k"] [--out DIR]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=2
SCENARIOS="fanout100 fanout1k"
OUT="$ROOT/bench/results/race-$(date -u +%Y%m%dT%H%M%SZ)"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift ;;
        --scenarios) SCENARIOS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
: "${OLD:?OLD=path of the old tailcast build}" "${NEW:?NEW=path of the new tailcast build}"
mkdir -p "$OUT"

for round in $(seq 1 "$ROUNDS"); do
    for build in old new nchan; do
        echo "[race] round $round: $build" >&2
        case "$build" in
            old) TAILCAST_BIN="$OLD" bash "$ROOT/bench/compare.sh" --servers tailcast \
                     --scenarios "$SCENARIOS" --out "$OUT/$round-old" > /dev/null ;;
            new) TAILCAST_BIN="$NEW" bash "$ROOT/bench/compare.sh" --servers tailcast \
                     --scenarios "$SCENARIOS" --out "$OUT/$round-new" > /dev/null ;;
            nchan) TAILCAST_BIN="$NEW" bash "$ROOT/bench/compare.sh" --servers nchan \
                     --scenarios "$SCENARIOS" --out "$OUT/$round-nchan" > /dev/null ;;
        esac
        rm -f "$OUT/$round-$build"/latest.*
        uptime >> "$OUT/load.txt"
    done
done

python3 - "$OUT" <<'PY' | tee "$OUT/race.md"
import glob, json, os, sys
out = sys.argv[1]
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*-*", "*.json"))):
    round_build = os.path.basename(os.path.dirname(path))
    rnd, build = round_build.split("-", 1)
    for key, r in json.load(open(path))["runs"].items():
        server, scenario = key.split("-", 1)
        lat = r.get("latency") or {}
        cpu = r.get("server_cpu_s")
        per = f"{cpu * 1e6 / max(r['deliveries'], 1):.2f}" if cpu is not None else "–"
        rows.setdefault(scenario, []).append(
            f"| {rnd} | {build} | {r['deliveries_per_s'] / 1000:.1f}k | "
            f"{lat.get('p50_ms', 0):.2f} / {lat.get('p99_ms', 0):.2f} | {r['rate_achieved']:.0f} | "
            f"{cpu} | {per} | {r['lost']}/{r['duplicates']}/{r['reordered']} |")
for scenario, lines in rows.items():
    print(f"\n### {scenario}\n")
    print("| round | build | deliveries/s | p50 / p99 ms | publishes/s | server CPU s | µs per delivery | lost/dup/reordered |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
load = open(os.path.join(out, "load.txt")).read().strip().splitlines()
print("\nLoad average after each run: " + "; ".join(l.split("load average:")[-1].strip() for l in load))
PY
