#!/usr/bin/env python3
"""Resident memory of an idle sluice node holding many partitions.

Starts `sluice serve` (release build) on loopback with a fresh data dir,
creates TOPICS x PARTITIONS partitions, writes one small message to each,
waits for the node to be idle, and prints its resident set size (VmRSS) next
to the budgets that bound it. Stops the broker by pid.

    python3 bench/scripts/footprint.py [--topics 10] [--partitions 100] [--cores 2]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topics", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=100)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--binary", default="target/release/sluice")
    args = ap.parse_args()
    data = tempfile.mkdtemp(prefix="footprint-", dir="target")
    port, admin = free_port(), free_port()
    broker = subprocess.Popen(
        [args.binary, "serve", "--data-dir", data, "--kafka-addr", f"127.0.0.1:{port}",
         "--admin-addr", f"127.0.0.1:{admin}", "--cores", str(args.cores)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        print(broker.stdout.readline().strip())
        bootstrap = f"127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        rss_empty = rss_kib(broker.pid)
        client = AdminClient({"bootstrap.servers": bootstrap})
        topics = [NewTopic(f"fp-{i}", args.partitions, 1) for i in range(args.topics)]
        for _, f in client.create_topics(topics, operation_timeout=60).items():
            f.result(timeout=120)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        for t in range(args.topics):
            for p in range(args.partitions):
                producer.produce(f"fp-{t}", value=b"x" * 100, partition=p)
        if producer.flush(120) != 0:
            sys.exit("not every message was acknowledged")
        time.sleep(2)  # idle
        rss = rss_kib(broker.pid)
        total = args.topics * args.partitions
        print(f"partitions {total}, cores {args.cores}: RSS empty {rss_empty / 1024:.1f} MiB, "
              f"holding {total} partitions with one message each {rss / 1024:.1f} MiB "
              f"({(rss - rss_empty) / total:.1f} KiB per partition)")
        print("budgets (defaults): shard.batch_cache_bytes 64 MiB per shard, "
              "kafka.queued_max_request_bytes 256 MiB per shard (requests in flight only), "
              "log.write_buffer_bytes 1 MiB per partition (unwritten appends only)")
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
