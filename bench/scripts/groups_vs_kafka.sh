#!/usr/bin/env bash
# Consumer group figures of sluice and Apache Kafka, measured one after the
# other on this machine with the same client and settings
# (bench/scripts/groups.py: rebalance time of a 10-member group when a
# member joins and when one leaves; offset commits per second and their
# latency with 1 and 8 committers).
#
# Usage: cargo build --release && bash bench/scripts/groups_vs_kafka.sh [ROUNDS] [COMMIT_SECONDS]
#
# Durability differs by design and is stated in the output: sluice answers
# a commit after its record is fdatasync'd; Kafka answers after the record is
# in the page cache of the offsets topic's leader (and its replicas).
# Writes target/bench-results/groups/{sluice,kafka}.json and prints both.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-5}"
seconds="${2:-5}"
out=target/bench-results/groups
mkdir -p "$out"
work="$(mktemp -d -p target)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sluice_pid=""
cleanup() {
  [ -n "$sluice_pid" ] && kill "$sluice_pid" 2>/dev/null && wait "$sluice_pid" 2>/dev/null || true
  scripts/kafka-oracle stop --data "$work/kafka" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

port="$(free_port)"
target/release/sluice serve --data-dir "$work/sluice" --kafka-addr "127.0.0.1:$port" \
  --admin-addr "127.0.0.1:$(free_port)" >"$work/sluice.log" 2>&1 &
sluice_pid=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
python3 bench/scripts/groups.py --bootstrap "127.0.0.1:$port" --rounds "$rounds" \
  --commit-seconds "$seconds" --label "sluice (commit fdatasync'd)" --json "$out/sluice.json"
kill "$sluice_pid"; wait "$sluice_pid" 2>/dev/null || true; sluice_pid=""

port="$(free_port)"
scripts/kafka-oracle start --port "$port" --data "$work/kafka" >/dev/null
python3 bench/scripts/groups.py --bootstrap "127.0.0.1:$port" --rounds "$rounds" \
  --commit-seconds "$seconds" --label "kafka $(cat target/kafka-oracle/libs/VERSION) (commit in page cache)" \
  --json "$out/kafka.json"
scripts/kafka-oracle stop --data "$work/kafka" >/dev/null

python3 - "$out/sluice.json" "$out/kafka.json" <<'PY'
import json, sys
s, k = (json.load(open(p)) for p in sys.argv[1:])
print("\nsluice / kafka:")
for key in ("rebalance_join_ms_median", "rebalance_leave_ms_median"):
    print(f"  {key}: {s[key]:.0f} / {k[key]:.0f} ms = {s[key] / k[key]:.2f}")
for cs, ck in zip(s["commits"], k["commits"]):
    print(f"  commits/s with {cs['committers']} committer(s): {cs['commits_per_s']:.0f} / {ck['commits_per_s']:.0f} = {cs['commits_per_s'] / ck['commits_per_s']:.2f}"
          f"; p99 {cs['latency_p99_us']:.0f} / {ck['latency_p99_us']:.0f} us")
PY
