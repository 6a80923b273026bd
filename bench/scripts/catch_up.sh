#!/usr/bin/env bash
# bench/scripts/catch_up.sh: catch-up (a backlog read from the start) for two
# sluice binaries, A and B, alternated in one run, next to fio's O_DIRECT
# sequential read of the same disk (BENCHMARKING.md: every figure against a
# baseline measured beside it).
#
#   bench/scripts/catch_up.sh A_BINARY B_BINARY [ROUNDS] [BACKLOG_MIB]
#
# Each round runs fio once (1 MiB O_DIRECT sequential reads, io_uring, depth
# 4, a file of BACKLOG_MIB in target/), then starts A and then B, each alone
# on CPU 1 (`serve --cores 1`, log.flush=never, fresh data dir), and runs
# `B_BINARY bench consume --workload catch-up --backlog-mib BACKLOG_MIB
# --cores 0` against it: the backlog is produced, then read from the start
# by one consumer. Prints each run's MB/s consumed and the broker's CPU per
# MB consumed (its user+system time while the consumer read, sampled from
# /proc from the consumer's first report on: a read shorter than a second
# has none, and 2048 MiB gives every run one), then the medians, B/A and
# each side's ratio to fio, and the bytes the disk read during each run for
# every backlog byte (from /proc/diskstats: more than 1 means bytes read
# twice, or read and not used). Defaults: 5 rounds, 1024 MiB (the catch-up
# preset's backlog). Result files stay in target/bench-results/catch-up/<time>/.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${3:-5}; MIB=${4:-1024}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/target/bench-results/catch-up/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
command -v fio >/dev/null || { echo "fio is needed (apt-get install fio)" >&2; exit 1; }
# shellcheck source=broker.sh
. "$ROOT/bench/scripts/broker.sh"
DEV=$(basename "$(df --output=source "$ROOT/target" | tail -1)")
sectors_read() { awk -v d="$DEV" '$3 == d {print $6}' /proc/diskstats; }
GEN=""
cleanup() {
  if [ -n "$GEN" ]; then kill "$GEN" 2>/dev/null || true; wait "$GEN" 2>/dev/null || true; fi
  cleanup_broker
  rm -f "$ROOT/target/catch-up-fio.dat"
}
trap cleanup EXIT
for round in $(seq 1 "$ROUNDS"); do
  fio --name=catch-up --filename="$ROOT/target/catch-up-fio.dat" --size="${MIB}m" --rw=read \
    --bs=1m --direct=1 --ioengine=io_uring --iodepth=4 --output-format=json \
    > "$OUT/fio-$round.json" 2>/dev/null
  rm -f "$ROOT/target/catch-up-fio.dat"
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    data="$OUT/data-$side-$round"
    start_broker "$bin" "$data" "$OUT/broker-$side-$round.log" never
    txt="$OUT/bench-$side-$round.txt"
    "$B" bench consume --bootstrap "127.0.0.1:$PORT" --workload catch-up --backlog-mib "$MIB" \
      --duration 60 --cores 0 --json "$OUT/$side-$round.json" > "$txt" 2>&1 &
    GEN=$!
    read0=$(sectors_read)
    # The broker's CPU from the consumer's first report to the end.
    while kill -0 "$GEN" 2>/dev/null && ! grep -q consumed "$txt"; do sleep 0.02; done
    start=$(ticks "$PID"); t0=$(date +%s.%N); last=$start; t1=$t0
    while kill -0 "$GEN" 2>/dev/null; do
      last=$(ticks "$PID"); t1=$(date +%s.%N); sleep 0.05
    done
    wait "$GEN"; GEN=""
    echo "$((last - start)) $t0 $t1" > "$OUT/cpu-$side-$round"
    echo "$(( ($(sectors_read) - read0) * 512 ))" > "$OUT/disk-$side-$round"
    stop_broker
    rm -rf "$data"
  done
done
python3 - "$OUT" "$ROUNDS" "$(getconf CLK_TCK)" "$MIB" <<'PY'
import json, statistics, sys
out, rounds, tck, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def fio(r):
    job = json.load(open(f"{out}/fio-{r}.json"))["jobs"][0]["read"]
    return job["bw_bytes"] / 1e6
def load(side, r):
    d = json.load(open(f"{out}/{side}-{r}.json"))
    mb = d["consume"]["mb_per_s"]
    ticks, t0, t1 = open(f"{out}/cpu-{side}-{r}").read().split()
    seconds = float(t1) - float(t0)
    cpu_ms_per_mb = 1000 * int(ticks) / tck / (mb * seconds) if seconds > 0 and mb else float("nan")
    disk_per_byte = int(open(f"{out}/disk-{side}-{r}").read()) / (mib << 20)
    return mb, cpu_ms_per_mb, disk_per_byte
rows = {s: [load(s, r) for r in range(1, rounds + 1)] for s in "AB"}
disk = [fio(r) for r in range(1, rounds + 1)]
for r in range(rounds):
    a, b = rows['A'][r], rows['B'][r]
    print(f"round {r + 1}: fio {disk[r]:7.0f} MB/s   A {a[0]:7.0f} MB/s {a[1]:6.3f} CPU-ms/MB {a[2]:5.2f} disk/byte"
          f"   B {b[0]:7.0f} MB/s {b[1]:6.3f} CPU-ms/MB {b[2]:5.2f} disk/byte")
def median(values):
    # A run too short for one CPU sample has none (nan): left out.
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")
med = {s: [median(x[i] for x in rows[s]) for i in range(3)] for s in "AB"}
fio_med = statistics.median(disk)
for s in "AB":
    lo, hi = min(x[0] for x in rows[s]), max(x[0] for x in rows[s])
    print(f"{s} median: {med[s][0]:.0f} MB/s (min {lo:.0f}, max {hi:.0f}), broker {med[s][1]:.3f} CPU-ms per MB, "
          f"disk read {med[s][2]:.2f} bytes per backlog byte; ÷ fio {med[s][0] / fio_med:.2f}")
print(f"fio median {fio_med:.0f} MB/s (min {min(disk):.0f}, max {max(disk):.0f})")
print(f"B/A: consumed {med['B'][0] / med['A'][0]:.2f}x  broker CPU per MB {med['B'][1] / med['A'][1]:.2f}x  "
      f"disk bytes read {med['B'][2] / med['A'][2]:.2f}x")
print(f"results: {out}")
PY
