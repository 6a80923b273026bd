#!/usr/bin/env python3
"""Share groups (KIP-932, queues): records per second through one share
group with 1, 4 and 16 consumers on a single partition (a consumer group
can use only one consumer there), and acknowledgement latency, on sluice
and on Apache Kafka 4.x, with the same client in the same run
(confluent-kafka's ShareConsumer, librdkafka's share consumer).

    python3 bench/scripts/share_figures.py [--runs 3] [--records 200000]
        [--size 100] [--consumers 1,4,16] [--timeout 300] [--poll-timeout 0.1]
        [--cores 1] [--pin BROKER_CPUS:CLIENT_CPUS] [--sluice target/release/sluice]
        [--out figures.json]

Run from the repository root with the release binary built; Kafka's jars
and java come from scripts/kafka-oracle (fetched on first use). Each run,
for each broker (a fresh `sluice serve --cores N` with data under
target/share-figures-*/, and a fresh one-node Kafka from
`scripts/kafka-oracle start`, KRaft, both with their default settings: the
share-group ones, group.share.*, are Kafka's defaults on both, e.g. a 5 s
member heartbeat, 30 s record locks, at most 2000 records locked per
partition), and for each consumer count C of --consumers:

1. a new topic (1 partition, replication factor 1) and a new share group,
   its share.auto.offset.reset set to earliest (IncrementalAlterConfigs on
   the GROUP resource);
2. C consumers, each its own process (multiprocessing, spawn) with its own
   ShareConsumer (share.acknowledgement.mode=explicit, everything else
   librdkafka's default), subscribe and poll; warm-up records are produced
   one at a time until each consumer has had one (a consumer that got one
   accepts it, commit_sync, and stops polling; another is produced when the
   last was taken, or after 2 s without a taker), so all C are members of
   the group, assigned the partition and fetching ("join_s": consumer
   processes started to all C ready; mostly the heartbeat interval, for
   context only);
3. with the consumers idle, --records N records of --size bytes are
   produced to the partition (one Producer, linger.ms=5, batch.size 256 KiB,
   acks=all, no compression) and flushed ("prefill_records_per_s", context);
4. all C are released at once, and each loops: poll(--poll-timeout, 0.1 s
   by default), acknowledge every record returned with ACCEPT,
   commit_sync(), until the N records are all accepted or --timeout s
   (--duration is the same option) pass.

Figures per run, broker and C:

- records_per_s: N / (release to the return of the last commit_sync that
  accepted one of the N for the first time). The group's joining (step 2)
  and the prefill (step 3) are outside this window: it is the rate at which
  a full partition is drained by C members, each record fetched, acquired,
  acknowledged and committed. A run that does not get all N accepted within
  --timeout counts (records accepted) / --timeout, and is flagged. At some
  200,000 records/s the default N drains in about a second; for figures
  (BENCHMARKING.md: at least 10 s counted) use --records 2000000 or more;
- commit_p50_ms, commit_p99_ms (and max): the duration of every
  commit_sync() in the window (the ShareAcknowledge round trip, over all
  consumers' commits), i.e. the acknowledgement latency as the application
  sees it. A commit carries one poll's records, and how many records one
  poll (one ShareFetch) hands out is the broker's choice ("records/commit"
  in the checks), so read the two brokers' commit times with it beside;
- checks: the number of distinct offsets of the N accepted (must be N),
  deliveries and redeliveries (a record delivered again, e.g. after a lock
  expired or a failed commit: deliveries - distinct records delivered, and
  the deliveries with delivery_count > 1), records accepted twice (two
  successful acknowledgements of one offset: must be 0), failed commits
  (a partition error or an exception from commit_sync), error messages from
  poll, records per commit, the per-consumer share of the N (min-max).

Both brokers run with their default durability (sluice: log.flush=always,
read from its startup line; Kafka: no fsync per write), as in
bench/README.md's comparisons. Clients and broker share this machine's
CPUs; nothing is pinned by default (sluice pins its --cores shard threads
as it always does). --pin B:C (CPU lists as taskset takes them, e.g. 0:1)
runs the broker on B (sluice under `taskset -c B`, Kafka with
KAFKA_ORACLE_CPUS=B) and this script, its producer and all consumers on C.

Per run, which broker goes first alternates (sluice first in even runs);
the consumer counts run in the order given. Prints the setup, a markdown
table of the medians over the runs [min-max] per broker and C, the sluice /
Kafka ratios per C (ratio of the medians, the min-max of the same-run
ratios beside it; BENCHMARKING.md: ratios of figures from the same run),
the scaling ratios per broker (records/s with C consumers / with the
smallest C), and the checks; --out writes all of it, every run's figures
included, as JSON. Exits 1 if a run did not get all N records accepted or
accepted one twice. Brokers are stopped by pid (sluice: SIGTERM, SIGKILL
after 30 s) or by `scripts/kafka-oracle stop --data DIR` (Kafka) after
each broker's run, also on error; consumer processes are stopped by pid
(terminate, then kill) at the end of each measurement. The data is removed
at the end; on error target/share-figures-*/ (broker logs, consumers'
librdkafka logs) is kept and named.
"""
import argparse
import ctypes
import json
import multiprocessing
import os
import queue
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
BROKERS = ("sluice", "kafka")
SERVING = re.compile(r"^sluice (\S+) serving: cores (\d+),.* flush (\S+)\s*$", re.M)
WAIT = 60  # seconds: topic creation, group config, joining, a consumer's close
PRODUCER = {"linger.ms": 5, "batch.size": 262144, "acks": "all", "compression.type": "none"}

_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent():
    # PR_SET_PDEATHSIG: a process started here gets SIGTERM if this script
    # dies unclean.
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


def tail(path, lines=30):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"({path}: not there)"
    return "\n".join(text.splitlines()[-lines:])


class Sluice:
    name = "sluice"

    def __init__(self, binary, root, cores, cpus):
        self.binary, self.root, self.cores, self.cpus = binary, root, cores, cpus
        self.data = root / "data"
        self.proc = None
        self.port = None

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.port, admin = free_ports(2)
        cmd = [self.binary, "serve", "--data-dir", str(self.data), "--kafka-addr",
               f"127.0.0.1:{self.port}", "--admin-addr", f"127.0.0.1:{admin}",
               "--cores", str(self.cores)]
        if self.cpus:
            cmd = ["taskset", "-c", self.cpus] + cmd
        with open(self.root / "sluice.out", "wb") as out, \
                open(self.root / "sluice.log", "wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, preexec_fn=_die_with_parent)
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
        return {"version": m.group(1), "shards": int(m.group(2)), "flush": m.group(3),
                "cpus": self.cpus or "not pinned (shard threads pinned by sluice)"}

    def log_tail(self):
        return tail(self.root / "sluice.log")

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

    def __init__(self, root, cpus):
        self.root, self.cpus = root, cpus
        self.data = root / "kafka"
        self.port = None
        self.started = False

    def start(self):
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        env = dict(os.environ)
        if self.cpus:
            env["KAFKA_ORACLE_CPUS"] = self.cpus
        self.started = True  # from here on, stop() asks the oracle
        try:
            r = subprocess.run(
                [str(ORACLE), "start", "--port", str(self.port), "--data", str(self.data)],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"kafka-oracle start did not return within 240 s; "
                               f"see {self.data}/logs")
        if r.returncode != 0:
            raise RuntimeError(f"kafka-oracle start exited with {r.returncode}:\n{r.stderr}")

    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def setup(self):
        return {"durability": "Kafka's default (no fsync per write)",
                "heap": os.environ.get("KAFKA_ORACLE_HEAP", "oracle default"),
                "cpus": self.cpus or os.environ.get("KAFKA_ORACLE_CPUS") or "not pinned"}

    def log_tail(self):
        return tail(self.data / "logs" / "server.log")

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
            log(f"kafka-oracle stop --data {self.data} exited with {r.returncode}:\n{r.stderr}")
            return False
        return True

    def remove_data(self):
        shutil.rmtree(self.data / "kraft", ignore_errors=True)


def create(bootstrap, topic):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(WAIT)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        t = admin.list_topics(topic, timeout=10).topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == 1 \
                and t.partitions[0].leader >= 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} did not appear within {WAIT} s")


def set_group(bootstrap, group, configs):
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                       ConfigResource, ResourceType)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
               for k, v in configs.items()]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(WAIT)


def percentile(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# --- a consumer (its own process)


def member(k, bootstrap, topic, group, poll_timeout, log_path, cpus, events, go, stop):
    """One share consumer: warm-up (one record, accepted and committed,
    then ("ready", k)); waits for `go`; then poll -> ACCEPT each -> commit_sync
    until `stop`, sending ("acked", ...) after each commit; ("done", k) after
    close. Any exception: ("error", k, text)."""
    _die_with_parent()
    if cpus:
        os.sched_setaffinity(0, parse_cpus(cpus))
    # librdkafka logs to stderr: to a file of this consumer's own.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    from confluent_kafka import AcknowledgeType, ShareConsumer
    c = None
    try:
        c = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": group,
                           "share.acknowledgement.mode": "explicit"})
        c.subscribe([topic])
        deadline = time.monotonic() + 2 * WAIT
        warm = []
        while not warm:
            if stop.is_set():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no warm-up record within {2 * WAIT} s")
            for m in c.poll(poll_timeout):
                if m.error():
                    print(f"warm-up poll error: {m.error()}", file=sys.stderr, flush=True)
                    continue
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                warm.append(m.offset())
        c.commit_sync(WAIT)
        events.put(("ready", k, warm))
        while not go.wait(0.5):
            if stop.is_set():
                return
        while not stop.is_set():
            batch = c.poll(poll_timeout)
            offsets, redelivered, errors = [], 0, []
            for m in batch:
                if m.error():
                    errors.append(str(m.error()))
                    continue
                c.acknowledge(m, AcknowledgeType.ACCEPT)
                offsets.append(m.offset())
                if (m.delivery_count() or 1) > 1:
                    redelivered += 1
            if not offsets:
                if errors:
                    events.put(("acked", k, time.monotonic(), [], [], 0, errors, None, None))
                continue
            t0 = time.monotonic()
            failure = None
            try:
                result = c.commit_sync(WAIT)
                bad = {f"{tp.topic}[{tp.partition}]": str(e)
                       for tp, e in result.items() if e is not None}
                if bad:
                    failure = f"commit_sync: {bad}"
                elif not result:
                    failure = "commit_sync: empty result with acknowledgements pending"
            except Exception as e:  # counted, and the records come back
                failure = f"commit_sync raised {e!r}"
            t1 = time.monotonic()
            accepted = offsets if failure is None else []
            events.put(("acked", k, t1, offsets, accepted, redelivered, errors,
                        t1 - t0, failure))
    except Exception as e:
        events.put(("error", k, repr(e)))
    finally:
        if c is not None:
            try:
                c.close()
            except Exception as e:
                print(f"close: {e!r}", file=sys.stderr, flush=True)
        events.put(("done", k))


# --- one measurement


def produce(bootstrap, topic, count, size, conf):
    """Produces `count` records of `size` bytes to partition 0 and waits for
    them; returns (first offset, last offset, seconds)."""
    from confluent_kafka import Producer
    p = Producer(dict(conf, **{"bootstrap.servers": bootstrap}))
    value = b"x" * size
    offsets = []
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            offsets.append(msg.offset())

    t0 = time.monotonic()
    for _ in range(count):
        while True:
            try:
                p.produce(topic, value, partition=0, on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
    left = p.flush(WAIT)
    elapsed = time.monotonic() - t0
    if left or errors or len(offsets) != count:
        raise RuntimeError(f"produce to {topic}: {left} left unsent, "
                           f"{len(offsets)} of {count} delivered, errors {errors[:3]}")
    return min(offsets), max(offsets), elapsed


def measure(broker, consumers, args, run, case_root):
    bootstrap = broker.bootstrap()
    topic = group = f"share-bench-{os.getpid()}-{run}-{consumers}"
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    case_root.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    go, stop = ctx.Event(), ctx.Event()
    procs = []
    try:
        t_start = time.monotonic()
        for k in range(consumers):
            p = ctx.Process(target=member, daemon=True, args=(
                k, bootstrap, topic, group, args.poll_timeout,
                str(case_root / f"consumer-{k}.log"), args.client_cpus, events, go, stop))
            p.start()
            procs.append(p)

        def next_event(timeout):
            try:
                ev = events.get(timeout=timeout)
            except queue.Empty:
                return None
            if ev[0] == "error":
                raise RuntimeError(f"consumer {ev[1]}: {ev[2]}; its log:\n"
                                   f"{tail(case_root / f'consumer-{ev[1]}.log', 10)}")
            if ev[0] == "done" and not stop.is_set():
                raise RuntimeError(f"consumer {ev[1]} ended early; its log:\n"
                                   f"{tail(case_root / f'consumer-{ev[1]}.log', 10)}")
            return ev

        # Warm-up: one record at a time until every consumer has had one.
        warmups, last, ready = 0, 0.0, set()
        deadline = time.monotonic() + 2 * WAIT
        while len(ready) < consumers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ready)} of {consumers} consumers had a warm-up "
                                   f"record within {2 * WAIT} s ({warmups} produced)")
            if len(ready) == warmups or time.monotonic() - last > 2:
                produce(bootstrap, topic, 1, args.size, {"linger.ms": 0})
                warmups, last = warmups + 1, time.monotonic()
            ev = next_event(0.05)
            if ev is not None and ev[0] == "ready":
                ready.add(ev[1])
        join_s = time.monotonic() - t_start

        first, last_offset, prefill_s = produce(bootstrap, topic, args.records, args.size,
                                                PRODUCER)
        if last_offset - first + 1 != args.records:
            raise RuntimeError(f"prefill offsets {first}-{last_offset} are not "
                               f"{args.records} consecutive offsets")

        # One flag a record (offset - first): a set of 2 million ints would
        # take some 100 MB.
        accepted = bytearray(args.records)
        delivered = bytearray(args.records)
        n_accepted = n_delivered = deliveries = redelivered = accepted_twice = 0
        per_consumer = [0] * consumers
        commit_s, records_per_commit, failures, poll_errors = [], [], [], []
        t_last = None

        def accept(k, offsets):
            """Counts `offsets` as accepted by consumer k; True if one was new."""
            nonlocal n_accepted, accepted_twice
            new = False
            for o in offsets:
                i = o - first
                if not 0 <= i < args.records:
                    continue  # a warm-up record
                if accepted[i]:
                    accepted_twice += 1
                else:
                    accepted[i] = 1
                    n_accepted += 1
                    per_consumer[k] += 1
                    new = True
            return new

        t_go = time.monotonic()
        go.set()
        deadline = t_go + args.timeout
        while n_accepted < args.records and time.monotonic() < deadline:
            ev = next_event(0.2)
            if ev is None or ev[0] != "acked":
                continue
            _, k, t1, offs, acc, redel, errs, dt, failure = ev
            poll_errors += errs
            if dt is not None:
                commit_s.append(dt)
                records_per_commit.append(len(offs))
            if failure:
                failures.append(failure)
            redelivered += redel
            for o in offs:
                i = o - first
                if 0 <= i < args.records:
                    deliveries += 1
                    if not delivered[i]:
                        delivered[i] = 1
                        n_delivered += 1
            if accept(k, acc):
                t_last = t1 if t_last is None else max(t_last, t1)
        complete = n_accepted == args.records
        stop.set()
        # What the consumers report while they stop (a commit in flight):
        # only checked for records accepted twice.
        done = set()
        close_deadline = time.monotonic() + WAIT
        while len(done) < consumers and time.monotonic() < close_deadline:
            try:
                ev = events.get(timeout=0.2)
            except queue.Empty:
                continue
            if ev[0] == "done":
                done.add(ev[1])
            elif ev[0] == "error":
                failures.append(f"consumer {ev[1]} while stopping: {ev[2]}")
            elif ev[0] == "acked":
                accept(ev[1], ev[4])
        elapsed = (t_last - t_go) if t_last is not None else float("nan")
        figures = {
            "records_per_s": args.records / elapsed if complete else n_accepted / args.timeout,
            "commit_p50_ms": percentile(commit_s, 0.50) * 1000,
            "commit_p99_ms": percentile(commit_s, 0.99) * 1000,
            "commit_max_ms": max(commit_s) * 1000 if commit_s else float("nan"),
            "drain_s": elapsed,
            "complete": complete,
            "accepted": n_accepted,
            "deliveries": deliveries,
            "redeliveries": deliveries - n_delivered,
            "delivery_count_gt1": redelivered,
            "accepted_twice": accepted_twice,
            "commits": len(commit_s),
            "failed_commits": len(failures),
            "first_failures": failures[:3],
            "poll_errors": len(poll_errors),
            "first_poll_errors": poll_errors[:3],
            "records_per_commit_avg": (statistics.mean(records_per_commit)
                                       if records_per_commit else float("nan")),
            "per_consumer_min": min(per_consumer),
            "per_consumer_max": max(per_consumer),
            "join_s": join_s,
            "warmup_records": warmups,
            "prefill_records_per_s": args.records / prefill_s,
        }
        if not complete:
            log(f"{broker.name} {consumers} consumers: only {n_accepted} of "
                f"{args.records} records accepted within {args.timeout} s; broker log:\n"
                f"{broker.log_tail()}")
        return figures
    finally:
        stop.set()
        for p in procs:
            p.join(WAIT if p.is_alive() else 0)
        for p in procs:
            if p.is_alive():
                log(f"consumer pid {p.pid} still there: terminate")
                p.terminate()
                p.join(10)
            if p.is_alive():
                p.kill()
                p.join(10)
        events.close()


def parse_cpus(spec):
    cpus = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        cpus.update(range(int(a), int(b or a) + 1))
    return cpus


def git(*a):
    try:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--consumers", default="1,4,16",
                    help="comma-separated consumer counts, e.g. 1,4,16")
    ap.add_argument("--timeout", "--duration", dest="timeout", type=float, default=300,
                    help="seconds the consumers may take to accept the N records")
    ap.add_argument("--poll-timeout", type=float, default=0.1,
                    help="seconds of each consumer's poll()")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--pin", help="BROKER_CPUS:CLIENT_CPUS, e.g. 0:1 (taskset lists)")
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--out")
    args = ap.parse_args()
    try:
        counts = [int(c) for c in args.consumers.split(",")]
    except ValueError:
        ap.error("--consumers: comma-separated integers")
    if not counts or min(counts) < 1:
        ap.error("--consumers: at least one count, each at least 1")
    if args.records < 1:
        ap.error("--records must be at least 1")
    if not os.access(args.sluice, os.X_OK):
        ap.error(f"no sluice binary at {args.sluice} (cargo build --release)")
    args.broker_cpus = args.client_cpus = None
    if args.pin:
        b, sep, c = args.pin.partition(":")
        if not sep or not b or not c:
            ap.error("--pin takes BROKER_CPUS:CLIENT_CPUS, e.g. 0:1")
        parse_cpus(b)
        os.sched_setaffinity(0, parse_cpus(c))  # the producer, and inherited
        args.broker_cpus, args.client_cpus = b, c
    # SIGTERM ends the script through the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    import confluent_kafka
    root = ROOT / "target" / f"share-figures-{os.getpid()}"
    results = {(b, c): [] for b in BROKERS for c in counts}
    brokers_setup = {}
    failed = True
    try:
        for run in range(args.runs):
            order = BROKERS if run % 2 == 0 else BROKERS[::-1]
            for position, name in enumerate(order):
                broker_root = root / f"{name}-{run}"
                broker = (Sluice(args.sluice, broker_root, args.cores, args.broker_cpus)
                          if name == "sluice" else Kafka(broker_root, args.broker_cpus))
                try:
                    broker.start()
                    brokers_setup.setdefault(name, broker.setup())
                    for c in counts:
                        try:
                            figures = measure(broker, c, args, run, broker_root / f"c{c}")
                        except Exception:
                            log(f"run {run} {name} {c} consumers failed; {name}'s log "
                                f"tail:\n{broker.log_tail()}")
                            raise
                        figures.update(run=run, broker_position=position)
                        log(f"run {run} {name} {c} consumers: " + ", ".join(
                            f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in figures.items() if not k.startswith("first_")))
                        results[(name, c)].append(figures)
                finally:
                    if broker.stop():
                        broker.remove_data()
        failed = False
    finally:
        if failed:
            log(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    def values(name, c, key):
        return [f[key] for f in results[(name, c)]]

    def median(name, c, key):
        return statistics.median(values(name, c, key))

    def ratio(a, b):
        return a / b if b else None

    def same_run_ratios(num, den, key):
        a = {f["run"]: f for f in results[num]}
        b = {f["run"]: f for f in results[den]}
        return [ratio(a[r][key], b[r][key]) for r in sorted(a)]

    def ratio_entry(num, den, key):
        med = ratio(median(*num, key), median(*den, key))
        per_run = same_run_ratios(num, den, key)
        return {"ratio_of_medians": med, "per_run": per_run}

    def fmt_ratio(e):
        if e["ratio_of_medians"] is None:
            return "n/a"
        ok = [x for x in e["per_run"] if x is not None]
        rng = f" [{min(ok):.2f}-{max(ok):.2f}]" if len(ok) == len(e["per_run"]) else " [n/a]"
        return f"{e['ratio_of_medians']:.2f}{rng}"

    def spread(name, c, key, digits):
        v = values(name, c, key)
        return f"{statistics.median(v):.{digits}f} [{min(v):.{digits}f}-{max(v):.{digits}f}]"

    keys = ("records_per_s", "commit_p50_ms", "commit_p99_ms")
    medians = {f"{n}/{c}": {k: median(n, c, k) for k in keys} for n in BROKERS for c in counts}
    vs_kafka = {str(c): {k: ratio_entry(("sluice", c), ("kafka", c), k) for k in keys}
                for c in counts}
    base = counts[0] if 1 not in counts else 1
    scaling = {n: {f"{c}_vs_{base}": ratio_entry((n, c), (n, base), "records_per_s")
                   for c in counts if c != base} for n in BROKERS}

    kafka_version_file = ROOT / "target" / "kafka-oracle" / "libs" / "VERSION"
    kafka_version = (kafka_version_file.read_text().strip()
                     if kafka_version_file.exists() else "?")
    sl = brokers_setup.get("sluice", {})
    setup = {
        "sluice": dict(sl, binary=args.sluice, cores_flag=args.cores,
                       git_commit=git("rev-parse", "HEAD"),
                       git_dirty=bool(git("status", "--porcelain", "--untracked-files=no"))),
        "kafka": dict(brokers_setup.get("kafka", {}), version=kafka_version, nodes=1,
                      mode="KRaft combined, scripts/kafka-oracle"),
        "client": f"confluent-kafka {confluent_kafka.__version__} (librdkafka "
                  f"{confluent_kafka.libversion()[0]}) ShareConsumer, one process each, "
                  f"share.acknowledgement.mode=explicit, poll({args.poll_timeout}) -> "
                  f"acknowledge(ACCEPT) each -> commit_sync()",
        "clients_cpus": args.client_cpus or "not pinned",
        "producer": ", ".join(f"{k}={v}" for k, v in PRODUCER.items()),
        "topic": "1 partition, replication factor 1, a new topic and share group per "
                 "broker, consumer count and run; share.auto.offset.reset=earliest",
        "runs": args.runs, "records": args.records, "record_size": args.size,
        "consumers": counts, "timeout_s": args.timeout,
        "order": "broker order alternates per run (even runs: sluice first)",
        "window": "records_per_s: N / (all consumers joined and released on a full "
                  "partition -> last first-time accept's commit_sync returned)",
        "machine": f"{os.cpu_count()} CPUs",
    }

    print(f"sluice {sl.get('version', '?')} ({setup['sluice']['git_commit'][:12]}"
          f"{', dirty' if setup['sluice']['git_dirty'] else ''}), --cores {args.cores}, "
          f"flush {sl.get('flush', '?')}; Apache Kafka {kafka_version}, one node, default "
          f"durability (no fsync per write); both with default group.share.* settings")
    print(f"client: {setup['client']}; {os.cpu_count()} CPUs, "
          + (f"broker on CPUs {args.broker_cpus}, clients on {args.client_cpus}"
             if args.pin else "nothing pinned (clients and broker share them)"))
    print(f"1 partition, {args.records} records of {args.size} B prefilled ({setup['producer']}); "
          f"records/s = N / (release of the joined consumers -> last record accepted); "
          f"commit = one commit_sync() (ShareAcknowledge) of a poll's records")
    print(f"medians of {args.runs} runs [min-max]")
    print()
    print("| broker | consumers | records/s | commit p50 ms | commit p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for n in BROKERS:
        for c in counts:
            print(f"| {n} | {c} | {spread(n, c, 'records_per_s', 0)} | "
                  f"{spread(n, c, 'commit_p50_ms', 2)} | {spread(n, c, 'commit_p99_ms', 2)} |")
    print()
    print("| consumers | records/s sluice/Kafka | commit p50 sluice/Kafka | "
          "commit p99 sluice/Kafka |")
    print("| ---: | ---: | ---: | ---: |")
    for c in counts:
        e = vs_kafka[str(c)]
        print(f"| {c} | {fmt_ratio(e['records_per_s'])} | {fmt_ratio(e['commit_p50_ms'])} | "
              f"{fmt_ratio(e['commit_p99_ms'])} |")
    if any(scaling.values()):
        print()
        others = [c for c in counts if c != base]
        print("| broker | " + " | ".join(f"records/s {c} vs {base}" for c in others) + " |")
        print("| --- | " + " | ".join("---:" for _ in others) + " |")
        for n in BROKERS:
            print(f"| {n} | " + " | ".join(fmt_ratio(scaling[n][f"{c}_vs_{base}"])
                                           for c in others) + " |")
    print()
    print("| broker | consumers | complete runs | redeliveries | accepted twice | "
          "failed commits | poll errors | records/commit | per consumer min-max | join s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    bad = False
    for n in BROKERS:
        for c in counts:
            rs = results[(n, c)]
            complete = sum(1 for f in rs if f["complete"])
            twice = sum(f["accepted_twice"] for f in rs)
            bad = bad or complete < len(rs) or twice > 0
            print(f"| {n} | {c} | {complete}/{len(rs)} | {sum(f['redeliveries'] for f in rs)} | "
                  f"{twice} | {sum(f['failed_commits'] for f in rs)} | "
                  f"{sum(f['poll_errors'] for f in rs)} | "
                  f"{statistics.median(f['records_per_commit_avg'] for f in rs):.0f} | "
                  f"{min(f['per_consumer_min'] for f in rs)}-"
                  f"{max(f['per_consumer_max'] for f in rs)} | "
                  f"{statistics.median(f['join_s'] for f in rs):.1f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"setup": setup,
                       "runs": {f"{n}/{c}": v for (n, c), v in results.items()},
                       "medians": medians, "sluice_vs_kafka": vs_kafka,
                       "scaling": scaling}, f, indent=1)
    if bad:
        log("a run did not accept all records, or accepted one twice: see the checks")
        sys.exit(1)


if __name__ == "__main__":
    main()
