#!/usr/bin/env bash
# Runs every share-group scenario (KIP-932: share_groups.py with
# confluent-kafka's ShareConsumer, and tests/clients/java/ShareCheck.java
# with kafka-clients' KafkaShareConsumer) against the real Apache Kafka
# (scripts/kafka-oracle) and compares each one's stdout with
# expected/share-SCENARIO.txt, or with --record rewrites those files.
#
# Usage: tests/clients/python/share_oracle.sh [--record] [SCENARIO...]
#        tests/clients/python/share_oracle.sh --bootstrap HOST:PORT [SCENARIO...]
#
# Scenarios: four release reject kill stall poison reset many read-committed
# dlq dlq-copy dlq-deleted dlq-configs (share_groups.py share-SCENARIO; read-committed
# sets share.isolation.level and uses transactions; the dlq ones need
# KIP-1191 dead-letter queues: Kafka 4.4 finalizes share.version=2 by
# default), java (ShareCheck.java java-share) and java-renew
# (ShareCheck.java java-renew: KIP-1222 lock renewal and the record_limit
# acquire mode; needs the 1000 ms lock floor below). With SCENARIO names
# only those run (and are recorded); without, all of them.
#
# Without --bootstrap, Kafka runs on a free loopback port with a temporary
# data directory and is stopped at the end, started with
#   group.share.min.record.lock.duration.ms=1000   (Kafka's floor for a
#       group's share.record.lock.duration.ms is 15000; kill, stall and
#       java-renew set it to 3000; needed)
#   group.share.heartbeat.interval.ms=1000 and
#   group.share.min.heartbeat.interval.ms=1000     (members get their
#       assignment after 1 s instead of 5 s; only for speed, no line
#       depends on it)
# --bootstrap HOST:PORT runs the scenarios against a broker already running
# there (e.g. sluice, configured like that) and only compares; it cannot be
# combined with --record. reject runs kafka-share-groups.sh through
# scripts/kafka-oracle tool against the same broker.
#
# java and java-renew need kafka-clients in tests/clients/java/target/dependency;
# it is fetched with Maven (mvn -q -B dependency:copy-dependencies) when
# missing.
# Topic and group names are unique per run. Prints one line per scenario
# with its verdict and time; exits non-zero if any failed or differed.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
oracle="$root/scripts/kafka-oracle"
expected="$here/expected"
java_dir="$root/tests/clients/java"
python="${SLUICE_TEST_PYTHON:-python3}"
java="${SLUICE_TEST_JAVA:-java}"

all_scenarios="four release reject kill stall poison reset many read-committed dlq dlq-copy dlq-deleted dlq-configs java java-renew"
record=0
bootstrap=""
scenarios=()
while [ $# -gt 0 ]; do
  case "$1" in
    --record) record=1; shift ;;
    --bootstrap) bootstrap="${2:?--bootstrap needs HOST:PORT}"; shift 2 ;;
    --bootstrap=*) bootstrap="${1#--bootstrap=}"; shift ;;
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
if [ -n "$bootstrap" ] && [ "$record" = 1 ]; then
  echo "--record records Kafka's output: it cannot be combined with --bootstrap" >&2
  exit 2
fi

case " ${scenarios[*]} " in
  *" java "* | *" java-renew "*)
    if ! ls "$java_dir"/target/dependency/kafka-clients-*.jar >/dev/null 2>&1; then
      (cd "$java_dir" && mvn -q -B dependency:copy-dependencies) >&2
    fi
    ;;
esac

work="$(mktemp -d)"
data="$work/kafka"
own_kafka=0
[ -n "$bootstrap" ] || own_kafka=1
cleanup() {
  [ "$own_kafka" = 0 ] || "$oracle" stop --data "$data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
if [ "$own_kafka" = 1 ]; then
  port="$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  bootstrap="127.0.0.1:$port"
  "$oracle" start --port "$port" --data "$data" \
    --config group.share.min.record.lock.duration.ms=1000 \
    --config group.share.heartbeat.interval.ms=1000 \
    --config group.share.min.heartbeat.interval.ms=1000 >/dev/null
fi

run_id="$(date +%s)-$$"
failed=0
for scenario in "${scenarios[@]}"; do
  name="share-$scenario"
  t0=$SECONDS
  rc=0
  if [ "$scenario" = java ] || [ "$scenario" = java-renew ]; then
    java_scenario=java-share
    [ "$scenario" = java ] || java_scenario="$scenario"
    (cd "$java_dir" && timeout 300 "$java" -cp 'target/dependency/*' ShareCheck.java \
      "$bootstrap" "$java_scenario" "$name-$run_id" "$name-$run_id") \
      >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  else
    timeout 300 "$python" "$here/share_groups.py" "$name" "$bootstrap" "$name-$run_id" "$name-$run_id" \
      >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  fi
  verdict=ok
  if [ "$rc" -ne 0 ]; then
    verdict="exit $rc"
    tail -n 20 "$work/$name.out" "$work/$name.err" >&2
  elif [ "$record" = 1 ]; then
    cp "$work/$name.out" "$expected/$name.txt"
    verdict=recorded
  elif ! diff -u "$expected/$name.txt" "$work/$name.out" >&2; then
    verdict=differs
  fi
  [ "$verdict" = ok ] || [ "$verdict" = recorded ] || failed=1
  printf '%-17s %-9s %ss\n' "$name" "$verdict" "$((SECONDS - t0))"
done
exit "$failed"
