#!/usr/bin/env bash
# A share-group (KIP-932) and dead-letter-queue (KIP-1191) scenario driven
# only by Apache Kafka's own console tools, run with
# `scripts/kafka-oracle tool CLASS ...` against the broker at BOOTSTRAP (the
# real Kafka, or sluice), so that their outputs can be compared line by line
# (the reference is tests/clients/python/expected/share-console.txt,
# recorded against Kafka 4.4.0). In order:
#   1. kafka-topics.sh --create: topic NAME (1 partition) and topic dlq.NAME
#      (1 partition, errors.deadletterqueue.group.enable=true);
#   2. kafka-configs.sh --entity-type groups --alter on group NAME:
#      share.auto.offset.reset=earliest, errors.deadletterqueue.topic.name=
#      dlq.NAME, errors.deadletterqueue.copy.record.enable=true;
#   3. kafka-console-producer.sh: 6 records k-0:m-0 .. k-5:m-5 (key:value)
#      to NAME;
#   4. kafka-console-share-consumer.sh --group NAME --max-messages 3
#      --reject: rejects the first 3 records (m-0..m-2); the other 3, which
#      it fetched too, are released when it closes;
#   5. kafka-console-share-consumer.sh --group NAME --max-messages 3
#      (accepting): gets only m-3..m-5 (rejected records are archived), each
#      a second time;
#   6. kafka-console-consumer.sh --from-beginning --max-messages 3 on
#      dlq.NAME: the 3 rejected records, copied with key and value, and
#      their __dlq.errors.* headers;
#   7. kafka-share-groups.sh --describe --group NAME --offsets.
# Each tool runs under `timeout 120`; the consumers also with --timeout-ms
# 60000, so a broker that delivers too little shows up as missing lines.
#
# Usage: tests/clients/share_console.sh BOOTSTRAP NAME
#   BOOTSTRAP  HOST:PORT of the broker
#   NAME       a topic and group name not used before on that broker (e.g.
#              share-console-$(date +%s))
#
# Prints, for each step, a line "== STEP" and then the tool's stdout (and
# the consumers' "Processed a total of N messages" line from their stderr),
# with every occurrence of NAME replaced by the word NAME and, for
# kafka-share-groups.sh, runs of blanks squeezed to one (its column widths
# follow the name's length). The tools' other stderr output (logs, notices)
# is dropped; when a tool fails (non-zero exit, e.g. killed by the timeout)
# its stderr is printed to stderr and the script exits 1. The output is the
# same from run to run: no timestamps, member ids or hosts, nothing sorted.
set -euo pipefail

if [ $# -ne 2 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
bootstrap="$1"
name="$2"
root="$(cd "$(dirname "$0")/../.." && pwd)"
oracle="$root/scripts/kafka-oracle"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# NAME as a sed pattern (it may hold regex characters such as '.').
name_re="$(printf '%s' "$name" | sed 's/[][\.*^$/]/\\&/g')"
mask() { sed "s/$name_re/NAME/g"; }

# tool INPUT CLASS ARGS...: runs one of Kafka's tools with INPUT as its stdin
# into $work/out and $work/err; on failure shows its stderr and exits 1.
tool() {
  local input="$1" rc=0
  shift
  timeout 120 "$oracle" tool "$@" <"$input" >"$work/out" 2>"$work/err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "share_console.sh: ${*:1:1} failed (exit $rc); its stderr:" >&2
    cat "$work/err" >&2
    exit 1
  fi
}
# The last tool's stdout, masked, and its "Processed a total" line.
show() {
  mask <"$work/out"
  grep -E '^Processed a total of [0-9]+ messages$' "$work/err" | mask || true
}

topics=org.apache.kafka.tools.TopicCommand
configs=org.apache.kafka.tools.ConfigCommand
producer=org.apache.kafka.tools.ConsoleProducer
share_consumer=org.apache.kafka.tools.consumer.ConsoleShareConsumer
consumer=org.apache.kafka.tools.consumer.ConsoleConsumer
share_groups=org.apache.kafka.tools.consumer.group.ShareGroupCommand

echo "== kafka-topics --create NAME"
tool /dev/null "$topics" --bootstrap-server "$bootstrap" --create --topic "$name" --partitions 1
show
echo "== kafka-topics --create dlq.NAME --config errors.deadletterqueue.group.enable=true"
tool /dev/null "$topics" --bootstrap-server "$bootstrap" --create --topic "dlq.$name" --partitions 1 \
  --config errors.deadletterqueue.group.enable=true
show

echo "== kafka-configs --entity-type groups --entity-name NAME --alter"
tool /dev/null "$configs" --bootstrap-server "$bootstrap" --entity-type groups --entity-name "$name" \
  --alter --add-config "share.auto.offset.reset=earliest,errors.deadletterqueue.topic.name=dlq.$name,errors.deadletterqueue.copy.record.enable=true"
show

echo "== kafka-console-producer: k-0:m-0 .. k-5:m-5"
for i in 0 1 2 3 4 5; do echo "k-$i:m-$i"; done >"$work/in"
tool "$work/in" "$producer" --bootstrap-server "$bootstrap" --topic "$name" \
  --reader-property parse.key=true --reader-property key.separator=:
show

share_print=(--formatter-property print.offset=true --formatter-property print.delivery=true
  --formatter-property print.key=true)
echo "== kafka-console-share-consumer --max-messages 3 --reject"
tool /dev/null "$share_consumer" --bootstrap-server "$bootstrap" --group "$name" --topic "$name" \
  --max-messages 3 --reject --timeout-ms 60000 "${share_print[@]}"
show
echo "== kafka-console-share-consumer --max-messages 3"
tool /dev/null "$share_consumer" --bootstrap-server "$bootstrap" --group "$name" --topic "$name" \
  --max-messages 3 --timeout-ms 60000 "${share_print[@]}"
show

echo "== kafka-console-consumer dlq.NAME --from-beginning --max-messages 3"
tool /dev/null "$consumer" --bootstrap-server "$bootstrap" --topic "dlq.$name" --from-beginning \
  --max-messages 3 --timeout-ms 60000 --formatter-property print.key=true \
  --formatter-property print.offset=true --formatter-property print.headers=true
show

echo "== kafka-share-groups --describe --group NAME --offsets"
tool /dev/null "$share_groups" --bootstrap-server "$bootstrap" --describe --group "$name" --offsets
show | awk 'NF { $1 = $1; print }'
