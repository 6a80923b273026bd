#!/usr/bin/env bash
# produce_vs_fio.sh — the broker's produce path next to a disk baseline,
# measured in ONE run on this machine (see ../shared/BENCHMARKING.md), until
# `sluice bench` (our own load generator) exists.
#
# What it measures, in this order:
#   1. fio baseline: sequential O_DIRECT writes of 16k, 64k and 256k blocks
#      (--direct=1 --ioengine=io_uring --rw=write --iodepth=1), 10 s each, in
#      three modes:
#        sync   each write followed by fdatasync (--fdatasync=1), overwriting
#               a 1 GiB file laid out beforehand (no metadata to commit);
#        append the same, but into a fresh file that grows with every write
#               (--fallocate=none, bounded at 8 GiB): every fdatasync also
#               commits the new size and blocks, as for sluice's segments,
#               which are appended to and not preallocated;
#        nosync writes only (the baseline of an unsynced append).
#      Reports MiB/s, write completion latency (clat) p50/p99 and fdatasync
#      latency p50/p99 from fio's JSON output.
#   2. sluice, tput-1k shape: `sluice serve --cores 2`, fresh data dir,
#      log.flush=always (default), a topic with 16 partitions, driven by
#      Kafka's own org.apache.kafka.tools.ProducerPerformance
#      (kafka-producer-perf-test) with --record-size 1024 --throughput -1 and
#      acks=all linger.ms=5 batch.size=262144: one warm-up run (warms the
#      broker), then counted runs, each a fresh JVM whose first ~3 s of
#      records are its own warm-up (--warmup-records: the figures are the
#      tool's "steady state" line) followed by >= 15 s counted.
#   3. sluice, SLUICE_LOG__FLUSH=never with acks=1 on a fresh broker and data
#      dir: max-rate runs, then runs at --throughput = half of the median
#      max records/s (p99 latency at a fixed load).
# Every measurement is repeated $REPS (3) times: median and min-max are
# reported, with ratios sluice/fio for the fio block size closest to the
# average batch the producer actually sent (producer metric batch-size-avg).
# CPU time of the broker and of the Java client (from /proc/<pid>/stat) and
# the machine's busy/iowait share are sampled during every counted run, to
# tell which side is CPU-bound.
#
# Output: a table on stdout, and everything (setup inside: sluice version and
# git commit, cores, flush policy, acks, record/batch size, linger,
# partitions, durations; every raw run) as JSON in
# target/bench-results/produce_vs_fio.json. Raw tool outputs stay in
# target/bench-produce-vs-fio/ (the broker data dirs and the fio file are
# removed at the end).
#
# Usage (from anywhere; it works in the repository root):
#   cargo build --release              # the script builds nothing itself
#   bash bench/scripts/produce_vs_fio.sh
# Takes about 8 minutes. Knobs (environment): REPS=3, FIO_RUNTIME=10,
# FIO_SIZE=1G, FIO_BS="16k 64k 256k", TARGET_SECS=15 (counted seconds per
# producer run), WARMUP_RECORDS=600000, CORES=2, JAVA_OPTS (default: the
# heap and GC options of Kafka's kafka-producer-perf-test.sh).
#
# Needs: target/release/sluice; python3 with confluent-kafka (pip-installed
# if missing); java 17+ and maven (Debian packages, installed if missing);
# fio (Debian package, installed if missing). The perf tool's jars come from
# Maven Central through bench/scripts/kafka-perf/pom.xml into
# target/kafka-perf/ (never commit them).
#
# Caveats built into the setup: client and broker share the machine's cores
# (the broker's shards are pinned to cores 0..CORES-1, the client is not
# pinned); the perf tool's latencies are client-measured send()->ack times
# that include queueing in the client's accumulator, measured from the actual
# (not the intended) send time; all traffic is on loopback (127.0.0.1).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

REPS=${REPS:-3}
FIO_RUNTIME=${FIO_RUNTIME:-10}
FIO_SIZE=${FIO_SIZE:-1G}
FIO_BS=${FIO_BS:-"16k 64k 256k"}
TARGET_SECS=${TARGET_SECS:-15}
WARMUP_RECORDS=${WARMUP_RECORDS:-600000}
CORES=${CORES:-2}
PARTITIONS=16
RECORD_SIZE=1024
BATCH_SIZE=262144
LINGER_MS=5
MAX_RUN_SECS=180 # a producer run taking longer than this is stopped
JAVA_OPTS=${JAVA_OPTS:-"-Xmx512M -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true"}

BIN=$ROOT/target/release/sluice
WORK=$ROOT/target/bench-produce-vs-fio
JARS=$ROOT/target/kafka-perf
RESULTS=$ROOT/target/bench-results/produce_vs_fio.json

step() { printf '\n== %s\n' "$*"; }
die() { echo "error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
# Every process this script starts is recorded here and stopped by pid.
PIDS=()
cleanup() {
  local rc=$? pid i
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do
    kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_DATA:-0}" != 1 ]; then
    rm -rf "$WORK/data-always" "$WORK/data-never" "$WORK/fio/testfile" "$WORK/fio/appendfile"
  fi
  [ "$rc" = 0 ] || echo "produce_vs_fio.sh failed (exit $rc); logs in $WORK" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() { # drop a pid that has been waited for
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------- checks
step "requirements"
[ -x "$BIN" ] || die "$BIN is missing: build it first with 'cargo build --release'"
git_commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
git_dirty=$([ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && echo true || echo false)
commit_time=$(git log -1 --format=%ct 2>/dev/null || echo 0)
bin_time=$(stat -c %Y "$BIN")
stale=false
if [ "$bin_time" -lt "$commit_time" ]; then
  stale=true
  echo "WARNING: $BIN is older than the last commit: rebuild with 'cargo build --release'" >&2
fi
if [ "$(nproc)" -lt "$CORES" ]; then die "this machine has $(nproc) cores, CORES=$CORES"; fi
sluice_env=$(env | grep '^SLUICE_' || true)
if [ -n "$sluice_env" ]; then
  echo "unsetting inherited SLUICE_* variables: $sluice_env"
  for v in $(env | grep -o '^SLUICE_[A-Za-z0-9_]*'); do unset "$v"; done
fi

apt_missing=()
command -v fio >/dev/null || apt_missing+=(fio)
command -v java >/dev/null || apt_missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || apt_missing+=(maven)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian packages: ${apt_missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install -q confluent-kafka
if ! ls "$JARS"/kafka-tools-*.jar >/dev/null 2>&1; then
  echo "fetching Kafka's perf tool jars from Maven Central into $JARS"
  (cd "$ROOT/bench/scripts/kafka-perf" && mvn -q -B dependency:copy-dependencies -DoutputDirectory="$JARS")
fi
kafka_version=$(basename "$(ls "$JARS"/kafka-tools-*.jar | head -1)" .jar | sed 's/^kafka-tools-//')
ls "$JARS"/kafka-clients-"$kafka_version".jar >/dev/null 2>&1 \
  || die "kafka-clients $kafka_version missing in $JARS (remove the directory and rerun)"

rm -rf "$WORK"
mkdir -p "$WORK/fio" "$WORK/perf" "$(dirname "$RESULTS")"
free_gib=$(df -BG --output=avail "$WORK" | tail -1 | tr -dc 0-9)
[ "$free_gib" -ge 20 ] || die "need 20 GiB free under target/ (have ${free_gib} GiB)"

# Anything else running skews every figure here: measure the idle machine.
read -r _ u0 n0 s0 i0 w0 q0 sq0 st0 _ </proc/stat
sleep 2
read -r _ u1 n1 s1 i1 w1 q1 sq1 st1 _ </proc/stat
background_busy=$(python3 -c "
b=($u1+$n1+$s1+$q1+$sq1)-($u0+$n0+$s0+$q0+$sq0); a=b+($i1+$w1+$st1)-($i0+$w0+$st0)
print(f'{b / a * $(nproc):.2f}' if a else '0')")
echo "machine busy before the benchmark: $background_busy of $(nproc) cores"
if python3 -c "import sys; sys.exit(0 if $background_busy > 0.25 else 1)"; then
  echo "WARNING: other processes are using $background_busy cores: every figure below is skewed:" >&2
  ps -eo pid,pcpu,etime,args --sort=-pcpu | head -5 >&2
fi

echo "sluice: $("$BIN" --version) ($BIN), kafka perf tool $kafka_version, $(fio --version), $(java -version 2>&1 | head -1)"
echo "NOTE: client and broker share this machine's $(nproc) cores: the broker runs"
echo "      --cores $CORES (shards pinned to cores 0..$((CORES - 1))), the Java client is unpinned on the same cores."

# ---------------------------------------------------------------- fio
step "fio baseline: O_DIRECT sequential writes, iodepth 1, ${FIO_RUNTIME}s each, $REPS rounds"
fio_file=$WORK/fio/testfile
append_file=$WORK/fio/appendfile
fio --name=layout --filename="$fio_file" --size="$FIO_SIZE" --bs=1M --rw=write \
  --direct=1 --create_only=1 --output=/dev/null
run_fio() { # mode(sync|append|nosync) bs rep
  local extra=() out=$WORK/fio/$1-$2-$3.json file=$fio_file size=$FIO_SIZE
  case $1 in
    sync) extra=(--fdatasync=1) ;;
    append) extra=(--fdatasync=1 --fallocate=none); file=$append_file; size=8G; rm -f "$file" ;;
  esac
  fio --name="$1-$2" --filename="$file" --size="$size" --bs="$2" \
    --direct=1 --ioengine=io_uring --rw=write --iodepth=1 "${extra[@]}" \
    --runtime="$FIO_RUNTIME" --time_based --output-format=json --output="$out" &
  local pid=$!
  PIDS+=("$pid")
  wait "$pid" || die "fio failed: see $out"
  forget_pid "$pid"
  rm -f "$append_file"
  python3 - "$out" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
w, s = j["write"], j["sync"]["lat_ns"]
p = lambda d, q: d.get("percentile", {}).get(q, 0) / 1e6
line = f"  {j['jobname']:>12}: {w['bw'] / 1024:8.1f} MiB/s, write clat p50 {p(w['clat_ns'], '50.000000'):.3f} p99 {p(w['clat_ns'], '99.000000'):.3f} ms"
if s.get("N"):
    line += f", fdatasync p50 {p(s, '50.000000'):.3f} p99 {p(s, '99.000000'):.3f} ms"
print(line)
EOF
}
for rep in $(seq 1 "$REPS"); do
  echo " round $rep"
  for bs in $FIO_BS; do
    run_fio sync "$bs" "$rep"
    run_fio append "$bs" "$rep"
    run_fio nosync "$bs" "$rep"
  done
done
rm -f "$fio_file"

# ---------------------------------------------------------------- broker
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
KAFKA_PORT=$(free_port)
ADMIN_PORT=$(free_port)
BOOTSTRAP=127.0.0.1:$KAFKA_PORT
BROKER_PID=

start_broker() { # flush
  local data=$WORK/data-$1
  rm -rf "$data"
  SLUICE_LOG__FLUSH=$1 "$BIN" serve --data-dir "$data" --kafka-addr "$BOOTSTRAP" \
    --admin-addr "127.0.0.1:$ADMIN_PORT" --cores "$CORES" >"$WORK/broker-$1.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  local i
  for i in $(seq 1 100); do
    kill -0 "$BROKER_PID" 2>/dev/null || die "broker exited: see $WORK/broker-$1.log"
    (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null && break
    sleep 0.1
  done
  head -1 "$WORK/broker-$1.log"
  grep -q "flush $1" "$WORK/broker-$1.log" || die "broker did not report flush $1"
  python3 - "$BOOTSTRAP" "$PARTITIONS" <<'EOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
for _, f in admin.create_topics([NewTopic("bench", int(sys.argv[2]), 1)], operation_timeout=30).items():
    f.result(timeout=60)
print(f"created topic bench with {sys.argv[2]} partitions")
EOF
}

stop_broker() {
  kill -TERM "$BROKER_PID"
  local i
  for i in $(seq 1 60); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$BROKER_PID" 2>/dev/null && { echo "broker did not stop in 30 s: SIGKILL" >&2; kill -KILL "$BROKER_PID"; }
  wait "$BROKER_PID" || true
  forget_pid "$BROKER_PID"
  BROKER_PID=
}

proc_ticks() { # utime+stime of a pid in clock ticks, or -1
  local f
  f=$(cat "/proc/$1/stat" 2>/dev/null) || { echo -1; return; }
  f=${f##*) }
  set -- $f
  echo $((${12} + ${13}))
}

# Samples CPU of broker and client every 0.5 s while the client runs; also
# the watchdog that stops a client running past MAX_RUN_SECS.
cpu_sampler() { # out broker_pid client_pid
  local out=$1 bpid=$2 jpid=$3 start=$SECONDS cpu u n s i w irq sirq st rest
  while kill -0 "$jpid" 2>/dev/null; do
    read -r cpu u n s i w irq sirq st rest </proc/stat
    echo "$(date +%s.%N) $(proc_ticks "$bpid") $(proc_ticks "$jpid") $((u + n + s + irq + sirq + st)) $w $((u + n + s + i + w + irq + sirq + st))" >>"$out"
    if [ $((SECONDS - start)) -gt "$MAX_RUN_SECS" ]; then
      echo "producer run exceeded ${MAX_RUN_SECS}s: stopping it" >&2
      kill -TERM "$jpid" 2>/dev/null || true
    fi
    sleep 0.5
  done
}

# run_perf NAME ACKS NUM_RECORDS THROUGHPUT WARMUP_RECORDS
#   -> $WORK/perf/NAME.out (+ .cpu)
run_perf() {
  local name=$1 acks=$2 num=$3 tput=$4 warm=$5 out=$WORK/perf/$1.out warm_args=()
  [ "$warm" -gt 0 ] && warm_args=(--warmup-records "$warm")
  # shellcheck disable=SC2086
  java $JAVA_OPTS -cp "$JARS/*" org.apache.kafka.tools.ProducerPerformance \
    --topic bench --num-records "$num" --record-size "$RECORD_SIZE" --throughput "$tput" \
    "${warm_args[@]}" --print-metrics \
    --producer-props bootstrap.servers="$BOOTSTRAP" acks="$acks" linger.ms="$LINGER_MS" \
    batch.size="$BATCH_SIZE" >"$out" 2>&1 &
  local jpid=$!
  PIDS+=("$jpid")
  cpu_sampler "$WORK/perf/$name.cpu" "$BROKER_PID" "$jpid" &
  local spid=$!
  PIDS+=("$spid")
  local rc=0
  wait "$jpid" || rc=$?
  forget_pid "$jpid"
  wait "$spid" || true
  forget_pid "$spid"
  [ "$rc" = 0 ] || die "ProducerPerformance failed (exit $rc): see $out"
  grep -q 'ms 99.9th' "$out" || die "no final line in $out"
  grep 'ms 99.9th' "$out" | sed "s/^/  $name: /"
}

perf_rate() { # file -> records/sec of its last summary line (steady state if any)
  grep 'ms 99.9th' "$1" | tail -1 | sed -E 's/.* records sent, ([0-9.]+) records\/sec.*/\1/'
}

# Counted runs: ~3 s of in-JVM warm-up records, then records for
# >= TARGET_SECS at the rate seen so far (grown if a run turns out shorter).
counted_runs() { # case acks
  local case=$1 acks=$2 rate warm num rep
  # the warm-up run's own second half (steady state) sizes the counted runs
  run_perf "$case-warmup" "$acks" "$WARMUP_RECORDS" -1 $((WARMUP_RECORDS / 2))
  rate=$(perf_rate "$WORK/perf/$case-warmup.out")
  warm=$(python3 -c "import math; print(math.ceil($rate * 3))")
  num=$(python3 -c "import math; print(math.ceil($rate * $TARGET_SECS * 1.5))")
  for rep in $(seq 1 "$REPS"); do
    run_perf "$case-$rep" "$acks" $((warm + num)) -1 "$warm"
    rate=$(perf_rate "$WORK/perf/$case-$rep.out")
    warm=$(python3 -c "import math; print(max($warm, math.ceil($rate * 3)))")
    num=$(python3 -c "import math; print(max($num, math.ceil($rate * $TARGET_SECS * 1.15)))")
  done
}

step "sluice, log.flush=always, acks=all (tput-1k): warm-up + $REPS counted runs"
start_broker always
counted_runs always-acksall all
stop_broker
rm -rf "$WORK/data-always"

step "sluice, log.flush=never, acks=1: warm-up + $REPS max-rate runs, then $REPS runs at half that rate"
start_broker never
counted_runs never-acks1 1
half=$(python3 - "$WORK/perf" "$REPS" <<'EOF'
import re, statistics, sys
rates = []
for rep in range(1, int(sys.argv[2]) + 1):
    text = open(f"{sys.argv[1]}/never-acks1-{rep}.out").read()
    rates.append(float(re.findall(r"([\d.]+) records/sec \([\d.]+ MB/sec\).*99\.9th", text)[-1]))  # steady state
print(int(statistics.median(rates) / 2))
EOF
)
echo "  half of the median max rate: $half records/s"
for rep in $(seq 1 "$REPS"); do
  run_perf "never-acks1-half-$rep" 1 $((half * (TARGET_SECS + 3))) "$half" $((half * 3))
done
stop_broker
rm -rf "$WORK/data-never"

# ---------------------------------------------------------------- report
step "results"
SLUICE_VERSION=$("$BIN" --version) GIT_COMMIT=$git_commit GIT_DIRTY=$git_dirty STALE=$stale \
  KAFKA_VERSION=$kafka_version FIO_VERSION=$(fio --version) JAVA_VERSION=$(java -version 2>&1 | head -1) \
  CORES=$CORES NPROC=$(nproc) PARTITIONS=$PARTITIONS RECORD_SIZE=$RECORD_SIZE BATCH_SIZE=$BATCH_SIZE \
  LINGER_MS=$LINGER_MS REPS=$REPS FIO_RUNTIME=$FIO_RUNTIME FIO_SIZE=$FIO_SIZE FIO_BS=$FIO_BS \
  TARGET_SECS=$TARGET_SECS WARMUP_RECORDS=$WARMUP_RECORDS HALF_RATE=$half JAVA_OPTS=$JAVA_OPTS \
  BIN_MTIME=$(date -u -d "@$bin_time" +%Y-%m-%dT%H:%M:%SZ) BACKGROUND_BUSY=$background_busy WORK=$WORK RESULTS=$RESULTS CLK_TCK=$(getconf CLK_TCK) \
  python3 - <<'EOF'
import glob, json, math, os, re, statistics, time

E = os.environ
work, reps = E["WORK"], int(E["REPS"])
tck, nproc = int(E["CLK_TCK"]), int(E["NPROC"])

def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}

def fmt(s, nd=1):
    if s is None:
        return "-"
    return f"{s['median']:.{nd}f} [{s['min']:.{nd}f}-{s['max']:.{nd}f}]"

def bs_bytes(bs):
    m = re.fullmatch(r"(\d+)([kKmM]?)", bs)
    return int(m.group(1)) * {"": 1, "k": 1024, "K": 1024, "m": 1 << 20, "M": 1 << 20}[m.group(2)]

# ---- fio
def pct(d, q):
    v = d.get("percentile", {}).get(q)
    return v / 1e6 if v is not None else None

fio = {}
for mode in ("sync", "append", "nosync"):
    for bs in E["FIO_BS"].split():
        runs = []
        for rep in range(1, reps + 1):
            j = json.load(open(f"{work}/fio/{mode}-{bs}-{rep}.json"))["jobs"][0]
            w, s = j["write"], j["sync"]["lat_ns"]
            r = {
                "mib_s": w["bw"] / 1024, "iops": w["iops"],
                "write_clat_p50_ms": pct(w["clat_ns"], "50.000000"),
                "write_clat_p99_ms": pct(w["clat_ns"], "99.000000"),
                "write_clat_p99_9_ms": pct(w["clat_ns"], "99.900000"),
                "mean_op_ms": 1000 / w["iops"] if w["iops"] else None,
                "cpu_usr_pct": j["usr_cpu"], "cpu_sys_pct": j["sys_cpu"],
                "runtime_s": j["job_runtime"] / 1000, "io_bytes": w["io_bytes"],
            }
            if mode != "nosync":
                r["fdatasync_p50_ms"] = pct(s, "50.000000")
                r["fdatasync_p99_ms"] = pct(s, "99.000000")
                # write + fdatasync per operation: sums of percentiles (an upper
                # bound of the op's percentile; fio reports the two separately)
                r["op_p50_ms"] = r["write_clat_p50_ms"] + r["fdatasync_p50_ms"]
                r["op_p99_ms"] = r["write_clat_p99_ms"] + r["fdatasync_p99_ms"]
            else:
                r["op_p50_ms"] = r["write_clat_p50_ms"]
                r["op_p99_ms"] = r["write_clat_p99_ms"]
            runs.append(r)
        summary = {k: spread([r.get(k) for r in runs]) for k in runs[0]}
        fio[f"{mode}-{bs}"] = {"mode": mode, "bs": bs, "bs_bytes": bs_bytes(bs), "runs": runs, "summary": summary}

# ---- sluice
LINE = re.compile(r"(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                  r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th")

def metric(text, name):
    m = re.search(rf"^producer-metrics:{name}:\{{client-id=[^}}]*\}}\s*:\s*([\d.NaE-]+)", text, re.M)
    try:
        return float(m.group(1)) if m else None
    except ValueError:
        return None

def cpu(path):
    rows = []
    for line in open(path):
        f = line.split()
        if len(f) == 6 and int(f[1]) >= 0 and int(f[2]) >= 0:
            rows.append([float(f[0])] + [int(x) for x in f[1:]])
    if len(rows) < 3:
        return None
    # steady state: skip the client's first 4 s (JVM start, its warm-up records)
    first = next((r for r in rows if r[0] >= rows[0][0] + 4), rows[0])
    last = rows[-1]
    dt = last[0] - first[0]
    dall = last[5] - first[5]
    if dt <= 0 or dall <= 0:
        return None
    r = {
        "window_s": round(dt, 2),
        "broker_cores": (last[1] - first[1]) / tck / dt,
        "client_cores": (last[2] - first[2]) / tck / dt,
        "machine_busy_cores": (last[3] - first[3]) / dall * nproc,
        "machine_iowait_cores": (last[4] - first[4]) / dall * nproc,
    }
    # kernel threads (softirq, jbd2, kworkers), the sampler, anything else
    r["other_cores"] = r["machine_busy_cores"] - r["broker_cores"] - r["client_cores"]
    return r

def perf_run(name):
    text = open(f"{work}/perf/{name}.out").read()
    m = LINE.findall(text)[-1]  # the steady-state line when there is one
    rec, rps, mbs, avg, mx, p50, p95, p99, p999 = m
    r = {
        "records": int(rec), "records_s": float(rps), "mib_s": float(mbs),
        "avg_ms": float(avg), "max_ms": float(mx), "p50_ms": float(p50), "p95_ms": float(p95),
        "p99_ms": float(p99), "p99_9_ms": float(p999),
        "counted_s": int(rec) / float(rps) if float(rps) else None,
        "batch_size_avg": metric(text, "batch-size-avg"),
        "request_size_avg": metric(text, "request-size-avg"),
        "records_per_request_avg": metric(text, "records-per-request-avg"),
        "request_latency_avg_ms": metric(text, "request-latency-avg"),
        "steady_state": "steady state" in text,
        "summary_lines": [l for l in text.splitlines() if "99.9th" in l],
    }
    r["cpu"] = cpu(f"{work}/perf/{name}.cpu")
    return r

cases = [
    ("always-acksall", "flush=always acks=all max", "always", "all", -1, "append"),
    ("never-acks1", "flush=never acks=1 max", "never", "1", -1, "nosync"),
    ("never-acks1-half", f"flush=never acks=1 @{E['HALF_RATE']}/s", "never", "1", int(E["HALF_RATE"]), "nosync"),
]
sluice = {}
for key, label, flush, acks, tput, base_mode in cases:
    runs = [perf_run(f"{key}-{rep}") for rep in range(1, reps + 1)]
    warm = perf_run(f"{key}-warmup") if os.path.exists(f"{work}/perf/{key}-warmup.out") else None
    summary = {k: spread([r[k] for r in runs])
               for k in ("records_s", "mib_s", "avg_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms", "p99_9_ms",
                         "counted_s", "batch_size_avg", "request_size_avg")}
    for k in ("broker_cores", "client_cores", "other_cores", "machine_busy_cores", "machine_iowait_cores"):
        summary[k] = spread([r["cpu"][k] if r["cpu"] else None for r in runs])
    # the fio block size closest (log scale) to the batch the producer sent
    bsz = summary["batch_size_avg"]["median"] if summary["batch_size_avg"] else int(E["BATCH_SIZE"])
    comp_bs = min(E["FIO_BS"].split(), key=lambda b: abs(math.log(bs_bytes(b) / bsz)))
    base = {}
    for mode in ("sync", "append", "nosync"):
        f = fio[f"{mode}-{comp_bs}"]["summary"]
        base[mode] = {
            "fio": f"{mode}-{comp_bs}",
            "mib_s_ratio": summary["mib_s"]["median"] / f["mib_s"]["median"],
            "p99_ratio": summary["p99_ms"]["median"] / f["op_p99_ms"]["median"],
        }
    sluice[key] = {
        "label": label, "flush": flush, "acks": acks, "throughput_limit_records_s": tput,
        "comparable_fio_bs": comp_bs, "primary_baseline": base_mode, "vs_fio": base,
        "warmup": warm, "runs": runs, "summary": summary,
    }

# ---- table
print(f"setup: {E['SLUICE_VERSION']} commit {E['GIT_COMMIT'][:12]}{' (dirty tree)' if E['GIT_DIRTY'] == 'true' else ''}, "
      f"broker --cores {E['CORES']} on a {nproc}-core machine SHARED with the Java client, loopback; "
      f"{E['PARTITIONS']} partitions, record {E['RECORD_SIZE']} B, batch.size {E['BATCH_SIZE']}, linger.ms {E['LINGER_MS']}, "
      f"1 producer (Kafka {E['KAFKA_VERSION']} ProducerPerformance), {reps} runs each, median [min-max]")
print("latencies: client-measured send()->ack in ms as the perf tool reports them (includes client queueing)\n")
hdr = f"{'sluice case':<30} {'MiB/s':>20} {'p50 ms':>16} {'p99 ms':>16} {'p99.9 ms':>16} {'avg batch':>9} {'cores broker/client/other/busy':>31}"
print(hdr)
print("-" * len(hdr))
for key, s in sluice.items():
    m = s["summary"]
    c = "/".join(f"{m[k]['median']:.2f}" if m[k] else "-" for k in ("broker_cores", "client_cores", "other_cores", "machine_busy_cores"))
    print(f"{s['label']:<30} {fmt(m['mib_s']):>20} {fmt(m['p50_ms'], 0):>16} {fmt(m['p99_ms'], 0):>16} "
          f"{fmt(m['p99_9_ms'], 0):>16} {m['batch_size_avg']['median'] / 1024 if m['batch_size_avg'] else 0:>7.0f}Ki {c:>31}")
print()
hdr = f"{'fio (O_DIRECT, qd1)':<22} {'MiB/s':>20} {'write p50 ms':>13} {'write p99 ms':>13} {'fdatasync p50':>14} {'fdatasync p99':>14} {'op p99 ms':>10}"
print(hdr)
print("-" * len(hdr))
for k, f in fio.items():
    m = f["summary"]
    g = lambda n: f"{m[n]['median']:.3f}" if m.get(n) else "-"
    print(f"{k:<22} {fmt(m['mib_s']):>20} {g('write_clat_p50_ms'):>13} {g('write_clat_p99_ms'):>13} "
          f"{g('fdatasync_p50_ms'):>14} {g('fdatasync_p99_ms'):>14} {g('op_p99_ms'):>10}")
print("(op p99 = write p99 + fdatasync p99, a sum of percentiles; write p99 alone for nosync.\n"
      " sync = overwrite of a laid-out file, append = a growing file as sluice's segments are)\n")
hdr = f"{'ratio sluice / fio':<30} {'fio':>12} {'MiB/s ratio':>12} {'p99 ratio':>10}"
print(hdr)
print("-" * len(hdr))
for key, s in sluice.items():
    for mode in ("append", "sync", "nosync"):
        b = s["vs_fio"][mode]
        mark = " *" if mode == s["primary_baseline"] else ""
        print(f"{s['label']:<30} {b['fio']:>12} {b['mib_s_ratio']:>12.2f} {b['p99_ratio']:>10.1f}{mark}")
print("(* the like-for-like baseline: append for flush=always, nosync for flush=never;\n"
      " the MiB/s ratio of a rate-limited run only says the load was below the disk's rate)")

result = {
    "benchmark": "produce_vs_fio",
    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "setup": {
        "sluice_version": E["SLUICE_VERSION"], "git_commit": E["GIT_COMMIT"], "git_dirty": E["GIT_DIRTY"] == "true",
        "binary_older_than_commit": E["STALE"] == "true", "binary_mtime": E["BIN_MTIME"],
        "machine_cores": nproc, "broker_cores": int(E["CORES"]),
        "background_busy_cores_before": float(E["BACKGROUND_BUSY"]),
        "client_and_broker_share_cores": True, "network": "loopback 127.0.0.1",
        "workload": "tput-1k shape (producer only, no consumer)",
        "partitions": int(E["PARTITIONS"]), "record_size": int(E["RECORD_SIZE"]),
        "batch_size": int(E["BATCH_SIZE"]), "linger_ms": int(E["LINGER_MS"]), "compression": "none",
        "producers": 1, "consumers": 0,
        "client": f"org.apache.kafka.tools.ProducerPerformance (Kafka {E['KAFKA_VERSION']}), {E['JAVA_VERSION']}",
        "java_opts": E["JAVA_OPTS"],
        "latency_note": "client-measured send()->ack per record, includes client queueing; percentiles in whole ms; "
                        "the rate-limited runs measure from the actual send time (coordinated omission not corrected)",
        "warmup": f"one run of {E['WARMUP_RECORDS']} records per broker before the counted runs; in every counted "
                  "run (a fresh JVM) ~3 s of records passed as --warmup-records, figures from the steady-state line",
        "target_counted_s_per_run": int(E["TARGET_SECS"]), "repetitions": reps,
        "fio": {"version": E["FIO_VERSION"], "runtime_s": int(E["FIO_RUNTIME"]), "size": E["FIO_SIZE"],
                "flags": "--direct=1 --ioengine=io_uring --rw=write --iodepth=1 --time_based; "
                         "sync: --fdatasync=1 over a laid-out file; append: --fdatasync=1 --fallocate=none "
                         "into a fresh file (size 8G bound); nosync: no sync, laid-out file"},
    },
    "fio": fio,
    "sluice": sluice,
}
with open(E["RESULTS"], "w") as f:
    json.dump(result, f, indent=2)
print(f"\nwrote {E['RESULTS']}")
EOF
