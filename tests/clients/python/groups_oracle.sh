#!/usr/bin/env bash
# Runs every consumer-group scenario (groups.py) and group_edges.py against
# the real Apache Kafka (scripts/kafka-oracle) and compares each one's
# stdout with expected/NAME.txt, or with --record rewrites those files.
#
# Usage: tests/clients/python/groups_oracle.sh [--record] [--delay MS]
#   --delay MS   Kafka's group.initial.rebalance.delay.ms (default 0; the
#                expected output is the same with Kafka's default 3000,
#                which only makes first joins ~3 s slower)
#
# Kafka runs on a free loopback port with a temporary data directory and is
# stopped at the end. The resume phases restart it between runs: a clean
# stop before resume-consume-2, a SIGKILL before resume-consume-3. Topic and
# group names are unique per run. Prints one line per scenario with its exit
# status and time; exits non-zero if any scenario failed or differed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
oracle="$root/scripts/kafka-oracle"
expected="$here/expected"
python="${SLUICE_TEST_PYTHON:-python3}"

record=0
delay=0
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record=1; shift ;;
    --delay) delay="${2:?--delay needs a value}"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

work="$(mktemp -d)"
data="$work/kafka"
port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
bootstrap="127.0.0.1:$port"
start() { "$oracle" start --port "$port" --data "$data" --config group.initial.rebalance.delay.ms="$delay" >/dev/null; }
cleanup() {
  "$oracle" stop --data "$data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
start

run_id="$(date +%s)-$$"
failed=0
run() { # NAME SCRIPT ARGS...
  local name="$1"
  shift
  local t0=$SECONDS rc=0
  timeout 600 "$python" "$here/$1" "${@:2}" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  local verdict=ok
  if [ "$rc" -ne 0 ]; then
    verdict="exit $rc"
    tail -n 20 "$work/$name.err" >&2
  elif [ "$record" = 1 ]; then
    cp "$work/$name.out" "$expected/$name.txt"
    verdict=recorded
  elif ! diff -u "$expected/$name.txt" "$work/$name.out" >&2; then
    verdict=differs
  fi
  [ "$verdict" = ok ] || [ "$verdict" = recorded ] || failed=1
  printf '%-18s %-9s %ss\n' "$name" "$verdict" "$((SECONDS - t0))"
}

r="$run_id"
run group_edges group_edges.py "$bootstrap" "edges-$r" "edges-$r"
run share groups.py share "$bootstrap" "share-$r" "share-$r"
run two-groups groups.py two-groups "$bootstrap" "two-$r" "two-a-$r" "two-b-$r"
run static groups.py static "$bootstrap" "static-$r" "static-$r"
run kafka-python groups.py kafka-python "$bootstrap" "kp-$r" "kp-$r"
run admin groups.py admin "$bootstrap" "admin-$r" "admin-$r"
run resume-produce groups.py resume-produce "$bootstrap" "resume-$r" "resume-$r"
run resume-consume-1 groups.py resume-consume "$bootstrap" "resume-$r" "resume-$r" 40
"$oracle" stop --data "$data" >/dev/null
start
run resume-consume-2 groups.py resume-consume "$bootstrap" "resume-$r" "resume-$r" 40
"$oracle" kill --data "$data" >/dev/null
start
run resume-consume-3 groups.py resume-consume "$bootstrap" "resume-$r" "resume-$r" 20
exit "$failed"
