#!/usr/bin/env bash
# Runs every transaction scenario (transactions.py, and txn_raw.py's raw
# requests: the leader's check that a partition is in the transaction and
# the group coordinator's that a group's offsets are, KIP-890 part 1, and
# transaction.version 2's implicit joins and epoch bumps, part 2)
# against the real Apache Kafka (scripts/kafka-oracle) and
# compares each one's stdout with expected/txn-SCENARIO.txt, or with
# --record rewrites those files.
#
# Usage: tests/clients/python/transactions_oracle.sh [--record] [SCENARIO...]
#
# With SCENARIO names (e.g. version2 offsets-version2) only those run (and
# are recorded); without, all of them.
#
# Kafka runs on a free loopback port with a temporary data directory and is
# stopped at the end. It looks for timed-out transactions every second
# (transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s by
# default), so the timeout scenario does not wait long; the lines it prints
# are the same either way. Names are unique per run. Prints one line per
# scenario with its verdict; exits non-zero if any failed or differed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
oracle="$root/scripts/kafka-oracle"
expected="$here/expected"
python="${SLUICE_TEST_PYTHON:-python3}"

all_scenarios="commit-abort fence timeout lso rpw unadded late no-id offsets-unadded offsets-late version2 offsets-version2"
record=0
scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record=1; shift ;;
    -*) echo "unknown argument: $1" >&2; exit 2 ;;
    *)
      case " $all_scenarios " in
        *" $1 "*) scenarios+=("$1"); shift ;;
        *) echo "unknown scenario: $1 (scenarios: $all_scenarios)" >&2; exit 2 ;;
      esac
      ;;
  esac
done
[ ${#scenarios[@]} -gt 0 ] || read -r -a scenarios <<<"$all_scenarios"

work="$(mktemp -d)"
data="$work/kafka"
port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
bootstrap="127.0.0.1:$port"
cleanup() {
  "$oracle" stop --data "$data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
"$oracle" start --port "$port" --data "$data" \
  --config transaction.abort.timed.out.transaction.cleanup.interval.ms=1000 >/dev/null

run_id="$(date +%s)-$$"
failed=0
for scenario in "${scenarios[@]}"; do
  name="txn-$scenario"
  case "$scenario" in
    unadded|late|no-id|offsets-unadded|offsets-late|version2|offsets-version2) script=txn_raw.py ;;
    *) script=transactions.py ;;
  esac
  rc=0
  timeout 300 "$python" "$here/$script" "$scenario" "$bootstrap" "$name-$run_id" \
    >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  verdict=ok
  if [ "$rc" -ne 0 ]; then
    verdict="exit $rc"
    tail -n 20 "$work/$name.err" >&2
  elif [ "$record" = 1 ]; then
    cp "$work/$name.out" "$expected/$name.txt"
    verdict=recorded
  elif ! diff -u "$expected/$name.txt" "$work/$name.out" >&2; then
    verdict=differs
  fi
  echo "$name: $verdict"
  [ "$verdict" = ok ] || [ "$verdict" = recorded ] || failed=1
done
exit "$failed"
