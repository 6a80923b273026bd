#!/usr/bin/env python3
"""Transactional produce next to idempotent produce, on sluice and on
Apache Kafka 4.x, with the same client (confluent-kafka / librdkafka).

    python3 bench/scripts/txn_figures.py [--runs 3] [--duration 15]
        [--warmup 3] [--records 100] [--size 1024] [--cores 1]
        [--sluice target/release/sluice] [--out figures.json]

Run from the repository root with the release binary built. Each run, for
each broker (a fresh `sluice serve --cores N` with data under
target/txn-figures-*/, and a fresh one-node Kafka from scripts/kafka-oracle),
creates a one-partition topic per mode and, for --duration s after --warmup
s, loops:

- transactional: begin, --records records of --size bytes, commit; a
  transaction's time is begin to commit returned;
- idempotent: the same --records records from an idempotent producer
  (enable.idempotence, acks=all), then flush; a round's time is the first
  send to the flush returned.

Both modes use linger.ms=0 (each round sends as soon as it can). Every
record's produce latency (send to its delivery report) is recorded too.
Both brokers run with their default durability (sluice: log.flush=always;
Kafka: no fsync per write), as in bench/README.md's comparisons; the
sluice figures are at the stricter durability.

Prints per broker and mode the medians over the runs of rounds per second
(transactions/s), records per second, round p50/p99 and record latency
p50/p99, and the ratios the issue asks for: transactional / idempotent on
each broker, and sluice / Kafka for each mode (BENCHMARKING.md: ratios of
figures from the same run). Brokers are stopped by pid (sluice) or by the
oracle (Kafka) at the end, also on error.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_port(port, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Sluice:
    def __init__(self, binary, root, cores):
        self.data = root / "sluice"
        self.port = free_port()
        admin = free_port()
        self.proc = subprocess.Popen(
            [binary, "serve", "--data-dir", str(self.data), "--kafka-addr",
             f"127.0.0.1:{self.port}", "--admin-addr", f"127.0.0.1:{admin}",
             "--cores", str(cores)],
            stdout=subprocess.DEVNULL, stderr=open(root / "sluice.log", "w"))
        wait_for_port(self.port)

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Kafka:
    ORACLE = "scripts/kafka-oracle"

    def __init__(self, root):
        self.data = root / "kafka"
        self.port = free_port()
        subprocess.run([self.ORACLE, "start", "--port", str(self.port), "--data",
                        str(self.data)], check=True, stdout=subprocess.DEVNULL)

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        subprocess.run([self.ORACLE, "stop", "--data", str(self.data)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def create(bootstrap, topic):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(60)
    time.sleep(1)


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(bootstrap, mode, args, run):
    topic = f"txn-bench-{mode}-{run}"
    create(bootstrap, topic)
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all",
            "enable.idempotence": True}
    if mode == "transactional":
        conf["transactional.id"] = topic
    p = Producer(conf)
    if mode == "transactional":
        p.init_transactions(60)
    value = b"x" * args.size
    latencies = []
    counting = [False]

    def delivered(err, msg, sent=None):
        if err is not None:
            raise RuntimeError(f"delivery failed: {err}")
        if counting[0]:
            latencies.append(time.perf_counter() - sent)

    rounds = []
    start = time.perf_counter()
    end_warmup = start + args.warmup
    end = end_warmup + args.duration
    counted_from = None
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if now >= end_warmup and counted_from is None:
            counted_from = now
            counting[0] = True
        t0 = time.perf_counter()
        if mode == "transactional":
            p.begin_transaction()
        for _ in range(args.records):
            sent = time.perf_counter()
            while True:
                try:
                    p.produce(topic, value, partition=0,
                              on_delivery=lambda e, m, s=sent: delivered(e, m, s))
                    break
                except BufferError:
                    p.poll(0.001)
        if mode == "transactional":
            p.commit_transaction(60)
        else:
            p.flush(60)
        if counted_from is not None:
            rounds.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - counted_from
    return {
        "rounds_per_s": len(rounds) / elapsed,
        "records_per_s": len(rounds) * args.records / elapsed,
        "round_p50_ms": percentile(rounds, 0.50) * 1000,
        "round_p99_ms": percentile(rounds, 0.99) * 1000,
        "record_p50_ms": percentile(latencies, 0.50) * 1000,
        "record_p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--records", type=int, default=100)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--out")
    args = ap.parse_args()
    root = Path("target") / f"txn-figures-{os.getpid()}"
    results = {}
    try:
        for run in range(args.runs):
            for name in ("sluice", "kafka"):
                broker_root = root / f"{name}-{run}"
                broker_root.mkdir(parents=True)
                broker = (Sluice(args.sluice, broker_root, args.cores)
                          if name == "sluice" else Kafka(broker_root))
                try:
                    for mode in ("idempotent", "transactional"):
                        figures = measure(broker.bootstrap(), mode, args, run)
                        log(f"run {run} {name} {mode}: " + ", ".join(
                            f"{k} {v:.2f}" for k, v in figures.items()))
                        results.setdefault((name, mode), []).append(figures)
                finally:
                    broker.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def median(name, mode, key):
        return statistics.median(f[key] for f in results[(name, mode)])

    keys = ["rounds_per_s", "records_per_s", "round_p50_ms", "round_p99_ms",
            "record_p50_ms", "record_p99_ms"]
    print(f"medians of {args.runs} runs, {args.records} records of {args.size} B per round")
    for name in ("sluice", "kafka"):
        for mode in ("idempotent", "transactional"):
            print(f"{name:6} {mode:13} " + "  ".join(
                f"{k} {median(name, mode, k):.2f}" for k in keys))
    for name in ("sluice", "kafka"):
        print(f"{name}: transactional / idempotent: rounds/s "
              f"{median(name, 'transactional', 'rounds_per_s') / median(name, 'idempotent', 'rounds_per_s'):.2f}, "
              f"record p99 {median(name, 'transactional', 'record_p99_ms') / median(name, 'idempotent', 'record_p99_ms'):.2f}")
    for mode in ("idempotent", "transactional"):
        print(f"{mode}: sluice / kafka: rounds/s "
              f"{median('sluice', mode, 'rounds_per_s') / median('kafka', mode, 'rounds_per_s'):.2f}, "
              f"round p99 {median('sluice', mode, 'round_p99_ms') / median('kafka', mode, 'round_p99_ms'):.2f}, "
              f"record p99 {median('sluice', mode, 'record_p99_ms') / median('kafka', mode, 'record_p99_ms'):.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({f"{n}/{m}": v for (n, m), v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
