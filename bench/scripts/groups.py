#!/usr/bin/env python3
"""Consumer group benchmark: rebalance time of a group and commits per second.

Speaks only the Kafka protocol (confluent-kafka / librdkafka), so it measures
any Kafka-compatible broker:

    python3 bench/scripts/groups.py --bootstrap 127.0.0.1:9092 [--members 10]
        [--rounds 5] [--commit-seconds 5] [--committers 1,8] [--json out.json]

Rebalance: MEMBERS consumers (eager "range" assignor, heartbeat every
500 ms, session 10 s) share a topic of 2*MEMBERS partitions. Each round
measures two events on a stable group:
  join  - one more member subscribes; time until every member (the new one
          included) has its new assignment;
  leave - that member closes (LeaveGroup); time until every remaining member
          has its new assignment.
Both are dominated by how soon members learn of the rebalance (their next
heartbeat) plus the JoinGroup/SyncGroup round: the same client settings
are used against every broker.

Commits: COMMITTERS threads, each its own consumer outside any generation
(as a consumer with manual assignment commits), commit one partition's
offset synchronously in a loop for COMMIT_SECONDS; commits per second and
the latency of one commit (p50/p99, microseconds).

Every loop is bounded by a deadline. Prints a table; --json writes the
figures with the setup.
"""
import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

DEADLINE_S = 60


def log(*a):
    print(*a, file=sys.stderr, flush=True)


class Member:
    """One group member polling in its own thread; records when it last got
    an assignment."""

    def __init__(self, bootstrap, group, topic, name):
        self.name = name
        self.assigned_at = None
        self.assignment = []
        self.stop = threading.Event()
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": "range",
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",
        })
        self.consumer.subscribe([topic], on_assign=self._on_assign)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_assign(self, consumer, partitions):
        self.assignment = sorted(p.partition for p in partitions)
        self.assigned_at = time.monotonic()

    def _run(self):
        while not self.stop.is_set():
            self.consumer.poll(0.05)

    def close(self):
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


def wait_until(what, cond, deadline_s=DEADLINE_S):
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.005)


def settled(members, since, partitions):
    """Every member was assigned after `since`, and together they hold each
    partition once."""
    if any(m.assigned_at is None or m.assigned_at < since for m in members):
        return False
    held = sorted(p for m in members for p in m.assignment)
    return held == list(range(partitions))


def rebalance_rounds(bootstrap, members, rounds):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"bench-groups-{uuid.uuid4().hex[:8]}"
    partitions = 2 * members
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(30)
    group = f"bench-group-{uuid.uuid4().hex[:8]}"
    stable = [Member(bootstrap, group, topic, f"m{i}") for i in range(members - 1)]
    try:
        wait_until("the first generation", lambda: settled(stable, 0, partitions))
        joins, leaves = [], []
        for r in range(rounds):
            start = time.monotonic()
            extra = Member(bootstrap, group, topic, f"extra{r}")
            everyone = stable + [extra]
            wait_until("a join rebalance", lambda: settled(everyone, start, partitions))
            joins.append(max(m.assigned_at for m in everyone) - start)
            start = time.monotonic()
            extra.close()
            wait_until("a leave rebalance", lambda: settled(stable, start, partitions))
            leaves.append(max(m.assigned_at for m in stable) - start)
            log(f"round {r}: join {joins[-1]*1000:.0f} ms, leave {leaves[-1]*1000:.0f} ms")
        return joins, leaves
    finally:
        for m in stable:
            m.close()
        admin.delete_topics([topic])


def commit_rate(bootstrap, committers, seconds):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = f"bench-commits-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, num_partitions=committers, replication_factor=1)])[topic].result(30)
    group = f"bench-commit-group-{uuid.uuid4().hex[:8]}"
    latencies = [[] for _ in range(committers)]
    consumers = [
        Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
        for _ in range(committers)
    ]
    # One warm-up commit each (coordinator lookup, connection).
    for i, c in enumerate(consumers):
        c.commit(offsets=[TopicPartition(topic, i, 0)], asynchronous=False)
    end = time.monotonic() + seconds

    def run(i):
        c, n = consumers[i], 1
        while time.monotonic() < end:
            t0 = time.perf_counter()
            c.commit(offsets=[TopicPartition(topic, i, n)], asynchronous=False)
            latencies[i].append(time.perf_counter() - t0)
            n += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(committers)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + DEADLINE_S)
    elapsed = time.monotonic() - start
    for c in consumers:
        c.close()
    admin.delete_topics([topic])
    all_lat = sorted(x for lat in latencies for x in lat)
    total = len(all_lat)
    pct = lambda q: all_lat[min(total - 1, int(q * total))] * 1e6
    return {
        "committers": committers,
        "commits": total,
        "commits_per_s": total / elapsed,
        "latency_p50_us": pct(0.50),
        "latency_p99_us": pct(0.99),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--members", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--commit-seconds", type=float, default=5)
    ap.add_argument("--committers", default="1,8")
    ap.add_argument("--label", default="")
    ap.add_argument("--json")
    args = ap.parse_args()

    joins, leaves = rebalance_rounds(args.bootstrap, args.members, args.rounds)
    commits = [commit_rate(args.bootstrap, int(k), args.commit_seconds) for k in args.committers.split(",")]
    result = {
        "label": args.label,
        "bootstrap": args.bootstrap,
        "setup": {
            "members": args.members,
            "partitions": 2 * args.members,
            "rounds": args.rounds,
            "assignor": "range",
            "heartbeat_interval_ms": 500,
            "session_timeout_ms": 10000,
            "commit_seconds": args.commit_seconds,
            "client": "confluent-kafka " + __import__("confluent_kafka").version()[0],
            "cpus": os.cpu_count(),
        },
        "rebalance_join_ms_median": statistics.median(joins) * 1000,
        "rebalance_join_ms": [round(x * 1000, 1) for x in joins],
        "rebalance_leave_ms_median": statistics.median(leaves) * 1000,
        "rebalance_leave_ms": [round(x * 1000, 1) for x in leaves],
        "commits": commits,
    }
    print(f"{args.label or args.bootstrap}: {args.members}-member group, {args.rounds} rounds")
    print(f"  rebalance on join  median {result['rebalance_join_ms_median']:.0f} ms  {result['rebalance_join_ms']}")
    print(f"  rebalance on leave median {result['rebalance_leave_ms_median']:.0f} ms  {result['rebalance_leave_ms']}")
    for c in commits:
        print(f"  commits, {c['committers']} committer(s): {c['commits_per_s']:.0f}/s, "
              f"p50 {c['latency_p50_us']:.0f} us, p99 {c['latency_p99_us']:.0f} us")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
