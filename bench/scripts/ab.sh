#!/usr/bin/env bash
# bench/scripts/ab.sh: two sluice binaries, A and B, alternated on the same
# workload in one run (BENCHMARKING.md: a change is judged against the
# baseline measured beside it, never against an old figure).
#
#   bench/scripts/ab.sh A_BINARY B_BINARY [ROUNDS] [FLUSH] [WORKLOAD] [DURATION]
#
# Each round starts A then B, each alone on CPU 1 (`serve --cores 1`,
# SLUICE_LOG__FLUSH=FLUSH, fresh data dir), and runs
# `B_BINARY bench e2e --workload WORKLOAD --duration DURATION --warmup 3
# --cores 0` against it (the same generator for both). Defaults: 5 rounds,
# flush always, tput-1k, 10 s. Prints each run's MB/s, produce p50/p99 and
# the broker's CPU per MB produced (its user+system time over the whole run,
# warm-up included, divided by the MB the run's rate gives over that time),
# then the medians and the ratio B/A, and the consumers' MB/s. BENCH_ARGS
# (environment) adds flags to the generator, e.g. BENCH_ARGS="--rate 300000
# --acks 1" with lat-1k. Result files stay in target/bench-results/ab/<time>/,
# with each broker's metrics as they were when its run ended.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${3:-5}; FLUSH=${4:-always}; WORKLOAD=${5:-tput-1k}; DURATION=${6:-10}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/target/bench-results/ab/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
# shellcheck source=broker.sh
. "$ROOT/bench/scripts/broker.sh"
trap cleanup_broker EXIT
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    data="$OUT/data-$side-$round"
    start_broker "$bin" "$data" "$OUT/broker-$side-$round.log" "$FLUSH"
    "$B" bench e2e --bootstrap "127.0.0.1:$PORT" --workload "$WORKLOAD" --duration "$DURATION" \
      --warmup 3 --cores 0 ${BENCH_ARGS:-} --json "$OUT/$side-$round.json" > "$OUT/bench-$side-$round.txt" 2>&1
    ticks "$PID" > "$OUT/cpu-$side-$round.ticks"
    curl -s "http://127.0.0.1:$ADMIN_PORT/metrics" > "$OUT/metrics-$side-$round.txt" || true
    stop_broker
    rm -rf "$data"
  done
done
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
out, rounds, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(side, r):
    d = json.load(open(f"{out}/{side}-{r}.json"))
    p = d["produce"]
    seconds = d["setup"]["duration_s"] + d["setup"]["warmup_s"]
    cpu_s = int(open(f"{out}/cpu-{side}-{r}.ticks").read()) / tck
    cpu_ms_per_mb = 1000 * cpu_s / (p["mb_per_s"] * seconds)
    lat = p["latency_us"]
    consumed = (d.get("consume") or {}).get("mb_per_s", 0.0)
    return (p["mb_per_s"], lat["p50"] / 1000, lat["p99"] / 1000, cpu_ms_per_mb,
            lat["p99_9"] / 1000, lat["max"] / 1000, consumed)
rows = {s: [load(s, r) for r in range(1, rounds + 1)] for s in "AB"}
def show(label, mb, p50, p99, cpu, p999, mx, consumed):
    print(f"{label}: {mb:8.1f} MB/s  produce p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  p99.9 {p999:7.2f} ms  "
          f"max {mx:7.2f} ms  broker {cpu:6.3f} CPU-ms/MB  consumed {consumed:8.1f} MB/s")
for s in "AB":
    for r, row in enumerate(rows[s], 1):
        show(f"{s} run {r}", *row)
med = {s: [statistics.median(x[i] for x in rows[s]) for i in range(7)] for s in "AB"}
for s in "AB":
    show(f"{s} median", *med[s])
def ratio(i):
    return med["B"][i] / med["A"][i] if med["A"][i] else float("nan")
print(f"B/A: throughput {ratio(0):.2f}x  p50 {ratio(1):.2f}x  p99 {ratio(2):.2f}x  "
      f"p99.9 {ratio(4):.2f}x  broker CPU per MB {ratio(3):.2f}x  consumed {ratio(6):.2f}x")
print(f"results: {out}")
PY
