#!/usr/bin/env bash
# run.sh BOOTSTRAP WORKDIR: Kafka Streams exactly-once (exactly_once_v2)
# word count (WordCount.java) against the broker at BOOTSTRAP, killed with
# SIGKILL mid-stream twice:
#
#   1. create INPUT and OUTPUT (2 partitions each, names unique to this
#      run), produce lines 0..299 to INPUT;
#   2. start the app (state dir WORKDIR/state-a); once it prints "running"
#      and has counted its first word, wait KILL_AFTER s and kill -9 it;
#   3. produce lines 300..599;
#   4. start it again with the same application id and the same state dir
#      (the same transactional id: its InitProducerId fences the killed
#      one and aborts its open transaction), kill -9 it the same way;
#   5. start it a third time with a fresh state dir WORKDIR/state-b (the
#      counts restored from the changelog; a new transactional id, so the
#      killed one's open transaction must end by the transaction timeout)
#      and let it run until OUTPUT holds 3 * 600 committed records and no
#      more come for 5 s (WordCount settle, at most SETTLE_S s);
#   6. WordCount check OUTPUT 600 (read_committed), then stop the app.
#
# stdout: deterministic lines only (no names, no times), ending with the
# check's "word count" lines, "output records: 1800", "duplicates-free:
# true" and "final counts correct: true" when all is well; exit status 0
# then, else 1 (a "FAIL: ..." line says where it stopped). Timings and
# diagnostics go to stderr; each app's stdout/stderr stay in
# WORKDIR/app-N.out and WORKDIR/app-N.err.
#
# The app is paced (DELAY_MS, 5 by default, per input line and again per
# word counted: 300 lines take 6 s) so that the kills land mid-stream,
# with a transaction open (its producer does not linger, so the open
# transaction's records are in the repartition, changelog and output
# topics, to be aborted). Every wait is bounded. The jars come from
# target/dependency (fetched with mvn when missing). Environment: STREAMS_DELAY_MS, STREAMS_KILL_AFTER_S (2),
# STREAMS_SETTLE_S (180), SLUICE_CLIENT_LOG (the clients' log level, warn).
set -uo pipefail

if [ $# -ne 2 ]; then
    echo "usage: run.sh BOOTSTRAP WORKDIR" >&2
    exit 2
fi
BOOTSTRAP=$1
WORK=$2
HERE="$(cd "$(dirname "$0")" && pwd)"
DELAY_MS=${STREAMS_DELAY_MS:-5}
KILL_AFTER=${STREAMS_KILL_AFTER_S:-2}
SETTLE_S=${STREAMS_SETTLE_S:-180}
START_S=120 # the longest wait for "running", and then for the first count

mkdir -p "$WORK"
if [ ! -d "$HERE/target/dependency" ]; then
    (cd "$HERE" && mvn -q -B -ntp dependency:copy-dependencies) >&2 || {
        echo "FAIL: mvn dependency:copy-dependencies"
        exit 1
    }
fi

tag="$(date +%s)-$$-$RANDOM"
INPUT="wc-in-$tag"
OUTPUT="wc-out-$tag"
APP_ID="wc-app-$tag"
T0=$(date +%s%N)
APP_PID=""
APP_N=0

WORDCOUNT=(java -cp "$HERE/target/dependency/*" "$HERE/WordCount.java")
wc() {
    "${WORDCOUNT[@]}" "$@"
}

elapsed() {
    local ms=$((($(date +%s%N) - T0) / 1000000))
    printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

note() {
    echo "[run.sh +$(elapsed) s] $*" >&2
}

stop_app() {
    if [ -n "$APP_PID" ]; then
        kill -9 "$APP_PID" 2>/dev/null
        wait "$APP_PID" 2>/dev/null
        APP_PID=""
    fi
}
trap stop_app EXIT

fail() {
    echo "FAIL: $*"
    note "FAIL: $*"
    if [ "$APP_N" -gt 0 ]; then
        echo "--- last lines of $WORK/app-$APP_N.err:" >&2
        tail -n 60 "$WORK/app-$APP_N.err" >&2
    fi
    stop_app
    exit 1
}

# start_app STATE_DIR: starts app number APP_N+1 in the background.
start_app() {
    APP_N=$((APP_N + 1))
    # A simple command in the background: $! is the JVM's own pid, which
    # the kills go to.
    "${WORDCOUNT[@]}" app "$BOOTSTRAP" "$APP_ID" "$INPUT" "$OUTPUT" "$1" "$DELAY_MS" \
        >"$WORK/app-$APP_N.out" 2>"$WORK/app-$APP_N.err" &
    APP_PID=$!
    note "app $APP_N started (pid $APP_PID, state dir $1)"
}

# wait_for FILE PATTERN WHAT: until FILE has a line matching PATTERN (grep
# -E), the app exits (fail) or START_S pass (fail).
wait_for() {
    local deadline=$((SECONDS + START_S))
    until grep -qE "$2" "$1" 2>/dev/null; do
        kill -0 "$APP_PID" 2>/dev/null || fail "app $APP_N exited before $3"
        [ $SECONDS -lt $deadline ] || fail "app $APP_N: no $3 in $START_S s"
        sleep 0.2
    done
}

# Starts the app, waits for "running" and its first word counted, lets it
# run KILL_AFTER s and kills it with SIGKILL.
run_and_kill() {
    start_app "$1"
    wait_for "$WORK/app-$APP_N.out" '^running$' '"running"'
    note "app $APP_N running"
    echo "app $APP_N running"
    wait_for "$WORK/app-$APP_N.err" '^WordCount: counting word ' 'word counted'
    note "app $APP_N counted its first word"
    sleep "$KILL_AFTER"
    kill -0 "$APP_PID" 2>/dev/null || fail "app $APP_N exited before it was killed"
    local last
    last=$(grep '^WordCount: ' "$WORK/app-$APP_N.err" | grep -v 'WordCount: state' | tail -n 2 | tr '\n' ' ')
    stop_app
    note "app $APP_N killed (kill -9) after: $last"
    echo "app $APP_N killed"
}

note "input $INPUT, output $OUTPUT, application id $APP_ID, work dir $WORK"
wc create "$BOOTSTRAP" "$INPUT" 2 >&2 || fail "create INPUT"
wc create "$BOOTSTRAP" "$OUTPUT" 2 >&2 || fail "create OUTPUT"
echo "created input and output (2 partitions each)"

wc produce "$BOOTSTRAP" "$INPUT" 300 0 || fail "produce lines 0..299"
note "produced lines 0..299"

run_and_kill "$WORK/state-a"

wc produce "$BOOTSTRAP" "$INPUT" 300 300 || fail "produce lines 300..599"
note "produced lines 300..599"

run_and_kill "$WORK/state-a"

start_app "$WORK/state-b"
wait_for "$WORK/app-$APP_N.out" '^running$' '"running"'
note "app $APP_N running (fresh state dir)"
echo "app $APP_N running (fresh state dir)"
settled=$(wc settle "$BOOTSTRAP" "$OUTPUT" 600 "$SETTLE_S")
echo "$settled"
note "$settled"
kill -0 "$APP_PID" 2>/dev/null || fail "app $APP_N exited"

wc check "$BOOTSTRAP" "$OUTPUT" 600
status=$?
note "checked (status $status)"

kill -0 "$APP_PID" 2>/dev/null || fail "app $APP_N exited during the check"
kill "$APP_PID" 2>/dev/null
for _ in $(seq 50); do
    kill -0 "$APP_PID" 2>/dev/null || break
    sleep 0.2
done
stop_app
echo "app $APP_N stopped"
note "done"
exit $status
