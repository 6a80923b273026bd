#!/usr/bin/env python3
"""Transactional produce next to idempotent produce, on sluice and on
Apache Kafka 4.x, with Kafka's own Java client at transaction version 2
(KIP-890 part 2): Kafka's ProducerPerformance tool.

    python3 bench/scripts/txn_java_figures.py [--runs 3] [--records 100000]
        [--size 1024] [--transaction-duration-ms 10] [--warmup-records 0]
        [--cores 1] [--timeout 600] [--sluice target/release/sluice]
        [--out figures.json]

Run with the release binary built; the Kafka jars and java come from
scripts/kafka-oracle (fetched on first use). Each run, for each broker (a
fresh `sluice serve --cores N` with data under target/txn-java-figures-*/,
and a fresh one-node Kafka from `scripts/kafka-oracle start`, KRaft, its
default heap), the script:

- reads the finalized `transaction.version` with Kafka's FeatureCommand
  (`describe`) and stops with an error unless it is 2 on both brokers, so
  the Java client runs transaction version 2 on both (Produce v12, EndTxn
  v5, an epoch bump per transaction, no AddPartitionsToTxn from the client);
- per mode, creates a one-partition topic (replication factor 1) with
  Kafka's TopicCommand, waits 1 s, then runs
  `scripts/kafka-oracle tool org.apache.kafka.tools.ProducerPerformance
  --bootstrap-server B --topic T --num-records N --record-size S
  --throughput -1 --print-metrics [--warmup-records W]
  --command-property acks=all linger.ms=0 enable.idempotence=true`, with
  `--transactional-id <unique per run and broker> --transaction-duration-ms D`
  added in the transactional mode (Kafka 4.4 names --producer-props and
  --producer.config deprecated; --command-property is the same setting).

ProducerPerformance sends the N records as fast as the producer takes them
(closed loop: `--throughput -1`, the 32 MiB default buffer.memory and
16 KiB batch.size). In the transactional mode it calls beginTransaction
before a send when no transaction is open and commitTransaction after the
first send that finds D ms gone since the begin (and once more at the end),
so a transaction holds whatever was sent in D ms, and records/s includes
the commits' waits. Its record latency is send() to the acknowledgement
callback (client queueing included), whole milliseconds for the
percentiles. The figures are its final summary line ("N records sent, X
records/sec (Y MB/sec), A ms avg latency, M ms max latency, p50 ms 50th,
p95 ms 95th, p99 ms 99th, p999 ms 99.9th."): records/s, MB/s, avg, max,
p50, p95, p99, p99.9; with --warmup-records W its " steady state" line (the
records after the first W) instead. From --print-metrics also: batch-size-
avg, records-per-request-avg, request-latency-avg, record retries and
errors, and txn-commit-time-ns-total (time spent in commitTransaction).
A run whose summary counts fewer than N records, or any record error, is
an error.

Every ProducerPerformance is a fresh JVM (heap from KAFKA_ORACLE_TOOL_HEAP,
the oracle's default otherwise), so both brokers get the same cold client;
--warmup-records leaves its warm-up out of the figures. Client and broker
share this machine's 2 cores; this script pins nothing (sluice pins its
--cores shard threads as it always does; KAFKA_ORACLE_CPUS, if set, pins
Kafka and is recorded). Both brokers run with their default durability
(sluice: log.flush=always, read back from its startup line; Kafka: no
fsync per write), as in bench/README.md's comparisons, so the sluice
figures are at the stricter durability.

Per run, which broker goes first alternates (sluice first in even runs),
and so does which mode goes first on a broker (idempotent first in even
runs); each mode gets its own topic. Prints per broker and mode the medians
over the runs, with min-max, of records/s, p50, p99 (and avg) latency, then
the ratios (BENCHMARKING.md: ratios of figures from the same run):
transactional / idempotent on each broker, and sluice / Kafka for each
mode, each as the ratio of the medians with the min-max of the per-run
ratios beside it ("n/a" when a denominator is 0, e.g. a 0 ms p50). Writes
the setup, every run's figures and the ratios to --out as JSON. Every wait
and subprocess has a timeout; brokers are stopped by pid (sluice: SIGTERM,
SIGKILL after 30 s) or by `scripts/kafka-oracle stop --data DIR` (Kafka)
after each broker's run, also on error. Each broker's data is removed once
it is stopped; the rest of target/txn-java-figures-*/ (logs, tool outputs)
is removed at the end, or kept, and named, on error.
"""
import argparse
import ctypes
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "scripts" / "kafka-oracle"
PERF = "org.apache.kafka.tools.ProducerPerformance"
TOPICS = "org.apache.kafka.tools.TopicCommand"
FEATURES = "org.apache.kafka.tools.FeatureCommand"
BROKERS = ("sluice", "kafka")
MODES = ("idempotent", "transactional")

# ProducerPerformance's final summary (Kafka 4.4, Stats.printTotal):
# "%d%s records sent, %f records/sec (%.2f MB/sec), %.2f ms avg latency,
# %.2f ms max latency, %d ms 50th, %d ms 95th, %d ms 99th, %d ms 99.9th."
# (%s: "" or " steady state"). The progress lines every 5 s have no
# percentiles and do not match.
SUMMARY = re.compile(
    r"^(\d+)( steady state)? records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
    r"([\d.]+) ms avg latency, ([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, "
    r"(\d+) ms 99th, (\d+) ms 99\.9th\.", re.M)
TV = re.compile(r"Feature:\s*transaction\.version\s.*?FinalizedVersionLevel:\s*(-?\d+)")
SERVING = re.compile(r"^sluice (\S+) serving: cores (\d+),.* flush (\S+)\s*$", re.M)

# Java formats numbers in the default locale: pin it to one with a "." for
# the decimal point.
TOOL_ENV = dict(os.environ, LC_ALL="C")

_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent():
    # PR_SET_PDEATHSIG: a child started here gets SIGTERM if this script
    # dies unclean (kept across the oracle's exec of java).
    _PRCTL(1, signal.SIGTERM)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for_port(port, proc, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the broker exited with {proc.returncode} while starting")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {seconds} s")


def tail(text, lines=30):
    return "\n".join(text.splitlines()[-lines:])


def tool(args, timeout, out_path=None):
    """Runs a Kafka tool class through the oracle; returns its stdout and
    stderr together. A non-zero exit or a timeout is an error (the JVM is
    killed then: the oracle execs it)."""
    try:
        r = subprocess.run([str(ORACLE), "tool", *args], env=TOOL_ENV,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout,
                           preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
        if out_path:
            out_path.write_text(out)
        raise RuntimeError(f"{args[0]} did not finish within {timeout} s:\n{tail(out)}")
    if out_path:
        out_path.write_text(r.stdout)
    if r.returncode != 0:
        raise RuntimeError(f"{args[0]} exited with {r.returncode}:\n{tail(r.stdout)}")
    return r.stdout


class Sluice:
    name = "sluice"

    def __init__(self, binary, root, cores):
        self.binary, self.root, self.cores = binary, root, cores
        self.data = root / "data"
        self.proc = None
        self.port = None

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.port, admin = free_ports(2)
        with open(self.root / "sluice.out", "wb") as out, \
                open(self.root / "sluice.log", "wb") as err:
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--data-dir", str(self.data), "--kafka-addr",
                 f"127.0.0.1:{self.port}", "--admin-addr", f"127.0.0.1:{admin}",
                 "--cores", str(self.cores)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=_die_with_parent)
        try:
            wait_for_port(self.port, self.proc)
        except RuntimeError as e:
            raise RuntimeError(f"sluice: {e}; see {self.root}/sluice.log")

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def setup(self):
        """What sluice printed when it started: version, shards, flush."""
        deadline = time.time() + 10
        while True:
            m = SERVING.search((self.root / "sluice.out").read_text(errors="replace"))
            if m or time.time() >= deadline:
                break
            time.sleep(0.1)
        if not m:
            return {}
        return {"version": m.group(1), "shards": int(m.group(2)), "flush": m.group(3)}

    def stop(self):
        """Stops it by pid; True once it is gone."""
        if self.proc is None or self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            log(f"sluice (pid {self.proc.pid}) ignored SIGTERM for 30 s: SIGKILL")
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                log(f"sluice (pid {self.proc.pid}) is still there 10 s after SIGKILL")
                return False
        return True

    def remove_data(self):
        shutil.rmtree(self.data, ignore_errors=True)


class Kafka:
    name = "kafka"

    def __init__(self, root):
        self.root = root
        self.data = root / "kafka"
        self.port = None
        self.started = False

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.started = True  # from here on, stop() asks the oracle
        try:
            r = subprocess.run(
                [str(ORACLE), "start", "--port", str(self.port), "--data", str(self.data)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, timeout=240)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"kafka-oracle start did not return within 240 s; "
                               f"see {self.data}/logs")
        if r.returncode != 0:
            raise RuntimeError(f"kafka-oracle start exited with {r.returncode}:\n"
                               f"{tail(r.stderr)}")

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def setup(self):
        return {"durability": "Kafka's default (no fsync per write)",
                "heap": os.environ.get("KAFKA_ORACLE_HEAP", "oracle default"),
                "cpus": os.environ.get("KAFKA_ORACLE_CPUS") or "not pinned"}

    def stop(self):
        """Stops it with the oracle (TERM, KILL after 20 s); True once it is
        gone."""
        if not self.started:
            return True
        try:
            r = subprocess.run([str(ORACLE), "stop", "--data", str(self.data)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, timeout=90)
        except subprocess.TimeoutExpired:
            log(f"kafka-oracle stop --data {self.data} did not return within 90 s")
            return False
        if r.returncode != 0:
            log(f"kafka-oracle stop --data {self.data} exited with {r.returncode}:\n"
                f"{tail(r.stderr)}")
            return False
        return True

    def remove_data(self):
        shutil.rmtree(self.data / "kraft", ignore_errors=True)


def transaction_version(broker, timeout):
    out = tool([FEATURES, "--bootstrap-server", broker.bootstrap(), "describe"], timeout,
               broker.root / "features.out")
    m = TV.search(out)
    # A feature supported only at level 0 is not listed.
    return int(m.group(1)) if m else 0


def create_topic(broker, topic, timeout):
    tool([TOPICS, "--bootstrap-server", broker.bootstrap(), "--create", "--topic", topic,
          "--partitions", "1", "--replication-factor", "1"], timeout,
         broker.root / f"create-{topic}.out")
    time.sleep(1)


def metric(text, name):
    m = re.search(rf"^producer-metrics:{re.escape(name)}:\{{[^}}]*\}}\s*:\s*(\S+)\s*$",
                  text, re.M)
    if not m:
        return None
    try:
        v = float(m.group(1))
    except ValueError:
        return None
    return v if math.isfinite(v) else None  # NaN (nothing sent yet) is no figure


def perf(broker, mode, topic, args, run):
    cmd = [PERF, "--bootstrap-server", broker.bootstrap(), "--topic", topic,
           "--num-records", str(args.records), "--record-size", str(args.size),
           "--throughput", "-1", "--print-metrics"]
    if args.warmup_records:
        cmd += ["--warmup-records", str(args.warmup_records)]
    if mode == "transactional":
        cmd += ["--transactional-id", f"txn-java-{os.getpid()}-{run}-{broker.name}",
                "--transaction-duration-ms", str(args.transaction_duration_ms)]
    # Last: --command-property takes every argument after it.
    cmd += ["--command-property", "acks=all", "linger.ms=0", "enable.idempotence=true"]
    t0 = time.perf_counter()
    out = tool(cmd, args.timeout, broker.root / f"perf-{mode}.out")
    wall = time.perf_counter() - t0
    lines = list(SUMMARY.finditer(out))
    total = [m for m in lines if not m.group(2)]
    if not total:
        raise RuntimeError(f"no summary line from ProducerPerformance:\n{tail(out)}")
    if int(total[-1].group(1)) != args.records:
        raise RuntimeError(f"ProducerPerformance completed {total[-1].group(1)} of "
                           f"{args.records} records:\n{tail(out)}")
    errors = metric(out, "record-error-total")
    if errors:
        raise RuntimeError(f"{errors:.0f} records failed:\n{tail(out)}")
    if args.warmup_records:
        steady = [m for m in lines if m.group(2)]
        if not steady:
            raise RuntimeError(f"no steady-state summary line:\n{tail(out)}")
        line = steady[-1]
    else:
        line = total[-1]
    n, _, rate, mb, avg, mx, p50, p95, p99, p999 = line.groups()
    commit_ns = metric(out, "txn-commit-time-ns-total")
    figures = {
        "records": int(n),
        "records_per_s": float(rate),
        "mb_per_s": float(mb),
        "avg_ms": float(avg),
        "max_ms": float(mx),
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "p999_ms": float(p999),
        "batch_size_avg": metric(out, "batch-size-avg"),
        "records_per_request_avg": metric(out, "records-per-request-avg"),
        "request_latency_avg_ms": metric(out, "request-latency-avg"),
        "record_retry_total": metric(out, "record-retry-total"),
        "record_error_total": errors,
        "txn_commit_s": commit_ns / 1e9 if commit_ns is not None else None,
        # the whole run's send time (warm-up included), as txn_commit_s
        "elapsed_s": int(total[-1].group(1)) / float(total[-1].group(3)),
        "tool_wall_s": wall,
        "summary": line.group(0),
    }
    return figures


def git(*a):
    try:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--transaction-duration-ms", type=int, default=10)
    ap.add_argument("--warmup-records", type=int, default=0,
                    help="records left out of the figures (ProducerPerformance's steady state)")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600,
                    help="seconds one ProducerPerformance may take")
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--out")
    args = ap.parse_args()
    if not 0 <= args.warmup_records < args.records:
        ap.error("--warmup-records must be at least 0 and below --records")
    if not os.access(args.sluice, os.X_OK):
        ap.error(f"no sluice binary at {args.sluice} (cargo build --release)")
    # SIGTERM ends the script through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    root = ROOT / "target" / f"txn-java-figures-{os.getpid()}"
    results = {(b, m): [] for b in BROKERS for m in MODES}
    brokers_setup = {}
    failed = True
    try:
        for run in range(args.runs):
            order = BROKERS if run % 2 == 0 else BROKERS[::-1]
            modes = MODES if run % 2 == 0 else MODES[::-1]
            for position, name in enumerate(order):
                broker_root = root / f"{name}-{run}"
                broker = (Sluice(args.sluice, broker_root, args.cores)
                          if name == "sluice" else Kafka(broker_root))
                try:
                    broker.start()
                    tv = transaction_version(broker, 120)
                    if tv != 2:
                        raise RuntimeError(f"{name} finalizes transaction.version {tv}, not 2 "
                                           f"(see {broker_root}/features.out)")
                    brokers_setup.setdefault(name, dict(broker.setup(),
                                                        transaction_version=tv))
                    for mode in modes:
                        topic = f"txn-java-{mode}-{run}"
                        create_topic(broker, topic, 120)
                        figures = perf(broker, mode, topic, args, run)
                        figures.update(run=run, broker_position=position)
                        log(f"run {run} {name} {mode}: " + figures["summary"])
                        results[(name, mode)].append(figures)
                finally:
                    if broker.stop():
                        broker.remove_data()
        failed = False
    finally:
        if failed:
            log(f"logs and tool outputs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    def values(name, mode, key):
        return [f[key] for f in results[(name, mode)]]

    def median(name, mode, key):
        return statistics.median(values(name, mode, key))

    def ratio(a, b):
        return a / b if b else None

    def by_run(name, mode):
        return {f["run"]: f for f in results[(name, mode)]}

    def same_run_ratios(num, den, key):
        """Per run, num's figure / den's figure; num and den are (broker, mode)."""
        a, b = by_run(*num), by_run(*den)
        return [ratio(a[r][key], b[r][key]) for r in sorted(a)]

    def fmt_ratio(med_ratio, per_run):
        if med_ratio is None:
            return "n/a"
        ok = [x for x in per_run if x is not None]
        rng = f" [{min(ok):.2f}-{max(ok):.2f}]" if len(ok) == len(per_run) else " [n/a]"
        return f"{med_ratio:.2f}{rng}"

    def spread(name, mode, key, digits):
        v = values(name, mode, key)
        return f"{statistics.median(v):.{digits}f} [{min(v):.{digits}f}-{max(v):.{digits}f}]"

    kafka_version_file = ROOT / "target" / "kafka-oracle" / "libs" / "VERSION"
    kafka_version = (kafka_version_file.read_text().strip()
                     if kafka_version_file.exists() else "?")
    sl = brokers_setup.get("sluice", {})
    setup = {
        "sluice": dict(sl, binary=args.sluice, cores_flag=args.cores,
                       git_commit=git("rev-parse", "HEAD"),
                       git_dirty=bool(git("status", "--porcelain", "--untracked-files=no"))),
        "kafka": dict(brokers_setup.get("kafka", {}), version=kafka_version,
                      nodes=1, mode="KRaft combined, scripts/kafka-oracle"),
        "client": f"org.apache.kafka.tools.ProducerPerformance (Kafka {kafka_version}), "
                  f"one JVM per measurement, heap "
                  f"{os.environ.get('KAFKA_ORACLE_TOOL_HEAP', 'oracle default')}",
        "topic": "1 partition, replication factor 1, a new topic per mode and run",
        "producer": "acks=all, linger.ms=0, enable.idempotence=true, batch.size and "
                    "buffer.memory default, no compression, --throughput -1 (closed loop)",
        "runs": args.runs,
        "records": args.records,
        "record_size": args.size,
        "warmup_records": args.warmup_records,
        "transaction_duration_ms": args.transaction_duration_ms,
        "order": "broker order and mode order alternate per run (even runs: sluice "
                 "first, idempotent first)",
        "machine": f"{os.cpu_count()} CPUs, client and broker share them",
    }

    keys = [("records_per_s", "records/s", 0), ("p50_ms", "p50 ms", 0),
            ("p99_ms", "p99 ms", 0), ("avg_ms", "avg ms", 2)]
    print(f"sluice {sl.get('version', '?')} ({setup['sluice']['git_commit'][:12]}"
          f"{', dirty' if setup['sluice']['git_dirty'] else ''}), --cores {args.cores}, "
          f"flush {sl.get('flush', '?')}; Apache Kafka {kafka_version}, one node, "
          f"default durability (no fsync per write)")
    print(f"client: Kafka {kafka_version} ProducerPerformance (transaction.version "
          f"{sl.get('transaction_version', '?')} on sluice, "
          f"{brokers_setup.get('kafka', {}).get('transaction_version', '?')} on Kafka), "
          f"same {os.cpu_count()} CPUs as the broker; 1 partition, {args.records} records "
          f"of {args.size} B (warm-up {args.warmup_records}), acks=all, linger.ms=0, "
          f"--throughput -1; transactional: a commit every "
          f"{args.transaction_duration_ms} ms")
    print(f"medians of {args.runs} runs [min-max]")
    for name in BROKERS:
        for mode in MODES:
            print(f"{name:6} {mode:13} " + "  ".join(
                f"{label} {spread(name, mode, k, d)}" for k, label, d in keys))
    for name in BROKERS:
        for mode in MODES:
            commit = [f["txn_commit_s"] / f["elapsed_s"] for f in results[(name, mode)]
                      if f["txn_commit_s"] is not None and f["elapsed_s"]]
            batch = [f["batch_size_avg"] for f in results[(name, mode)]
                     if f["batch_size_avg"] is not None]
            rlat = [f["request_latency_avg_ms"] for f in results[(name, mode)]
                    if f["request_latency_avg_ms"] is not None]
            print(f"  {name:6} {mode:13} context: batch-size-avg "
                  f"{statistics.median(batch) if batch else float('nan'):.0f} B, "
                  f"request-latency-avg "
                  f"{statistics.median(rlat) if rlat else float('nan'):.2f} ms"
                  + (f", in commitTransaction {100 * statistics.median(commit):.0f}% "
                     f"of the time" if mode == "transactional" and commit else ""))

    ratios = {}
    print("ratios of the medians [min-max of the same-run ratios]")
    for name in BROKERS:
        parts = []
        for k, label, _ in keys:
            med = ratio(median(name, "transactional", k), median(name, "idempotent", k))
            per_run = same_run_ratios((name, "transactional"), (name, "idempotent"), k)
            ratios[f"{name}: transactional/idempotent: {k}"] = {"of_medians": med,
                                                                 "per_run": per_run}
            parts.append(f"{label} {fmt_ratio(med, per_run)}")
        print(f"{name}: transactional / idempotent: " + ", ".join(parts))
    for mode in MODES:
        parts = []
        for k, label, _ in keys:
            med = ratio(median("sluice", mode, k), median("kafka", mode, k))
            per_run = same_run_ratios(("sluice", mode), ("kafka", mode), k)
            ratios[f"{mode}: sluice/kafka: {k}"] = {"of_medians": med, "per_run": per_run}
            parts.append(f"{label} {fmt_ratio(med, per_run)}")
        print(f"{mode}: sluice / kafka: " + ", ".join(parts))

    if args.out:
        medians = {f"{n}/{m}": {k: median(n, m, k) for k, _, _ in keys + [
            ("mb_per_s", "", 0), ("p95_ms", "", 0), ("p999_ms", "", 0), ("max_ms", "", 0)]}
            for n in BROKERS for m in MODES}
        with open(args.out, "w") as f:
            json.dump({"setup": setup,
                       "runs": {f"{n}/{m}": v for (n, m), v in results.items()},
                       "medians": medians, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
