#!/usr/bin/env bash
# bench/scripts/many_partitions.sh: the broker's CPU while it serves the
# many-partitions workload (10,000 partitions, 1 KiB values at 2,000 msg/s),
# two sluice binaries A and B alternated in one run (BENCHMARKING.md).
#
#   bench/scripts/many_partitions.sh A_BINARY B_BINARY [ROUNDS] [FLUSH] [DURATION]
#
# Each round starts A then B, each alone on CPU 1 (`serve --cores 1`,
# SLUICE_LOG__FLUSH=FLUSH, fresh data dir), creates the topic `mp` of 10,000
# partitions with `sluice topic create`, waits until the broker is idle
# (its partitions opened), and runs `B_BINARY bench produce --workload many-partitions
# --topic mp --duration DURATION --warmup 3 --cores 0`. The broker's CPU is
# its user+system time (all threads, from /proc/PID/stat) over the bench
# alone, warm-up included, as a share of one core. Defaults: 5 rounds, flush
# always, 20 s. Prints each run, the medians and B/A. Result files stay in
# target/bench-results/many_partitions/<time>/.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${3:-5}; FLUSH=${4:-always}; DURATION=${5:-20}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/target/bench-results/many_partitions/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
# shellcheck source=broker.sh
. "$ROOT/bench/scripts/broker.sh"
trap cleanup_broker EXIT
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    data="$OUT/data-$side-$round"
    start_broker "$bin" "$data" "$OUT/broker-$side-$round.log" "$FLUSH"
    # The answer can take longer than the client waits when the disk is
    # slow to sync 10,000 new directories; the broker goes on opening them.
    "$B" topic create mp -p 10000 --bootstrap "127.0.0.1:$PORT" > "$OUT/create-$side-$round.txt" 2>&1 || true
    settle
    before=$(ticks "$PID"); t0=$(date +%s.%N)
    "$B" bench produce --bootstrap "127.0.0.1:$PORT" --workload many-partitions --topic mp \
      --duration "$DURATION" --warmup 3 --cores 0 --json "$OUT/$side-$round.json" \
      > "$OUT/bench-$side-$round.txt" 2>&1
    after=$(ticks "$PID"); t1=$(date +%s.%N)
    echo "$before $after $t0 $t1" > "$OUT/cpu-$side-$round.txt"
    stop_broker
    rm -rf "$data"; sync
  done
done
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
out, rounds, tck = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def load(side, r):
    d = json.load(open(f"{out}/{side}-{r}.json"))
    p = d["produce"]
    before, after, t0, t1 = open(f"{out}/cpu-{side}-{r}.txt").read().split()
    core = (int(after) - int(before)) / tck / (float(t1) - float(t0))
    lat = p["latency_us"]
    return (100 * core, p["msgs_per_s"], lat["p99"] / 1000, p["errors"])
rows = {s: [load(s, r) for r in range(1, rounds + 1)] for s in "AB"}
def show(label, cpu, msgs, p99, errors):
    print(f"{label}: broker {cpu:5.1f}% of a core  {msgs:7.0f} msg/s  produce p99 {p99:7.2f} ms  errors {errors:.0f}")
for s in "AB":
    for r, row in enumerate(rows[s], 1):
        show(f"{s} run {r}", *row)
med = {s: [statistics.median(x[i] for x in rows[s]) for i in range(4)] for s in "AB"}
for s in "AB":
    show(f"{s} median", *med[s])
print(f"B/A: broker CPU {med['B'][0] / med['A'][0]:.2f}x  p99 {med['B'][2] / med['A'][2]:.2f}x")
print(f"results: {out}")
PY
