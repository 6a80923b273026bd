#!/usr/bin/env bash
# bench/scripts/stop_time.sh: how long a broker takes to create a topic of
# many partitions and to stop holding them (SIGTERM to exit), two sluice
# binaries A and B alternated in one run (BENCHMARKING.md).
#
#   bench/scripts/stop_time.sh A_BINARY B_BINARY [ROUNDS] [PARTITIONS]
#
# Each round, for A then B, alone on CPU 1 (`serve --cores 1`, fresh data
# dir, the default flush): start, create a topic of PARTITIONS partitions
# with `sluice topic create` (timed until it answers: "create"), wait until
# the broker is idle, stop it and time the stop ("after create"); then start it again on the same data,
# wait until it is idle (every partition opened) and time a second stop
# ("after restart": nothing changed since the partitions were opened).
# Defaults: 3 rounds, 10,000 partitions. Prints each run, the medians and
# B/A. Logs stay in target/bench-results/stop_time/<time>/. With
# FRESH_EXT4=1 (as root), each run's data lives on an ext4 filesystem made
# anew in a 16 GiB file on a loop device, so no run inherits the inodes
# another freed.
set -euo pipefail
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${3:-3}; PARTITIONS=${4:-10000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/target/bench-results/stop_time/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
# shellcheck source=broker.sh
. "$ROOT/bench/scripts/broker.sh"
MOUNT="$OUT/mnt"
unmount_fresh() { if mountpoint -q "$MOUNT"; then umount "$MOUNT"; fi; rm -f "$OUT/ext4.img"; }
trap 'cleanup_broker; unmount_fresh' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    data="$OUT/data-$side-$round"
    if [ "${FRESH_EXT4:-0}" = 1 ]; then
      truncate -s 16G "$OUT/ext4.img"; mkfs.ext4 -q -F "$OUT/ext4.img"
      mkdir -p "$MOUNT"; mount -o loop "$OUT/ext4.img" "$MOUNT"; data="$MOUNT/data"
    fi
    start_broker "$bin" "$data" "$OUT/broker-$side-$round-1.log"
    t0=$(date +%s.%N)
    "$B" topic create many -p "$PARTITIONS" --bootstrap "127.0.0.1:$PORT" \
      > "$OUT/create-$side-$round.txt" 2>&1 || true
    created=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    settle
    stop_broker; first=$STOPPED
    start_broker "$bin" "$data" "$OUT/broker-$side-$round-2.log"
    settle
    stop_broker; second=$STOPPED
    echo "$first $second $created" > "$OUT/$side-$round.txt"
    rm -rf "$data"; sync
    unmount_fresh
  done
done
python3 - "$OUT" "$ROUNDS" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {s: [tuple(map(float, open(f"{out}/{s}-{r}.txt").read().split())) for r in range(1, rounds + 1)] for s in "AB"}
for s in "AB":
    for r, (a, b, c) in enumerate(rows[s], 1):
        print(f"{s} run {r}: create {c:6.2f} s  stop after create {a:6.2f} s  after restart {b:6.2f} s")
med = {s: [statistics.median(x[i] for x in rows[s]) for i in range(3)] for s in "AB"}
for s in "AB":
    print(f"{s} median: create {med[s][2]:6.2f} s  stop after create {med[s][0]:6.2f} s  after restart {med[s][1]:6.2f} s")
print(f"B/A: create {med['B'][2] / med['A'][2]:.2f}x  after create {med['B'][0] / med['A'][0]:.2f}x  after restart {med['B'][1] / med['A'][1]:.2f}x")
print(f"results: {out}")
PY
