#!/usr/bin/env python3
"""Throughput during a partition reassignment: sluice on a 4-broker cluster
on loopback, a topic's replicas moved from brokers 1 and 2 onto brokers 3
and 4 with Kafka's own kafka-reassign-partitions tool while a producer keeps
writing to it with acks=all.

    python3 bench/scripts/reassignment_figures.py [--runs 3] [--duration 60]
        [--start-after 15] [--warmup 5] [--after 10] [--preload-mb 256]
        [--throttle 50000000] [--timeout 300] [--rate N] [--verify-during]
        [--flush always|never] [--sluice target/release/sluice]
        [--out figures.json]

Run from the repository root, with the release binary built and
scripts/kafka-oracle able to run Kafka's tools. Every run is a fresh cluster
of four `sluice serve` processes (node ids 1-4, all four controller voters,
one shard each, started as bench/scripts/replication_figures.py starts its
three; log.flush is sluice's default unless --flush), ready when every
broker lists all four and they name one controller. Brokers and every Kafka
tool JVM are started by this script and stopped by pid (SIGTERM, SIGKILL
after a grace) at the end, also on error, Ctrl-C or SIGTERM. Data lives
under target/reassignment-figures-*/ and is removed at the end; at the peak
(brokers 1-4 all holding the topic) it takes about 4 x (preload + load
MB/s x load seconds) of disk. Nothing is pinned: brokers, the tools and the
load generator share the machine's cores.

Per run:

1. Topic reassign-<id>, 8 partitions, replication factor 2, all on brokers
   1 and 2: partition i on [1,2] if i is even, [2,1] if odd. Created with
   Kafka's TopicCommand --replica-assignment 1:2,2:1,... (confluent-kafka
   2.16.1's NewTopic refuses a replica assignment), then waited for until
   every broker's Metadata shows each partition with a leader and both
   replicas in sync.
2. Preload: --preload-mb MiB of 1 KiB values, acks=all, through the
   producer of 3 (closed loop), flushed, so there is data to move; in sync
   again before the load starts.
3. Load: one confluent-kafka producer in a thread of this script: acks=all,
   linger 5 ms, no idempotence, keyless 1 KiB values (random bytes, the same
   for every message), librdkafka's sticky partitioner over the 8
   partitions, at most 50,000 messages queued; closed loop (as fast as the
   queue drains), or open loop at --rate msg/s. It follows leader changes as
   any Kafka client does; `sluice bench` is not used because it fixes each
   partition's leader when it starts, so after the move it would only count
   NOT_LEADER errors. Delivery reports come only for failures; at each
   whole second since the load started the generator records the messages
   acknowledged so far (produced - still queued or in flight - failed):
   one throughput sample per second (MB = 2^20 bytes of values, as Kafka's
   tools and `sluice bench` count).
4. At --start-after s into the load, ReassignPartitionsCommand --execute
   with a plan moving every partition to [3,4] (even) or [4,3] (odd), with
   --throttle BYTES/s (per broker, Kafka's meaning; -1: no throttle flag).
   Meanwhile, every 0.2 s, Metadata (Kafka protocol v4) from all four
   brokers: the move is "seen" when a broker first lists a new replica,
   "moved" when every broker lists each partition with exactly its target
   replicas, both in sync and one of them leading. Then --verify every 2 s
   until it reports each partition "is completed" (which also clears the
   throttles). --verify is not run while the move is in progress unless
   --verify-during is given: each run is a JVM start, which on a small
   machine takes CPU from the brokers and would be measured as the
   reassignment's cost. Time limit --timeout s from --execute.
   Reassignment duration: seen -> moved. Bytes moved: the topic's segment
   files (DATA/<topic>/<partition>/*.log) on brokers 3 and 4 at "moved",
   i.e. every partition (preload + what the load had written by then)
   copied once to each new broker, approximately.
5. The load runs --duration s, or until --after s past "moved" if that is
   later (so there is an "after" window; at most --start-after + --timeout
   + --after s). Windows of whole seconds of the load: before = from
   --warmup to the --execute call, during = seen -> moved, after = moved ->
   end of the load; the seconds while the --execute JVM starts (call ->
   seen) are in neither. Throughput before (median), during (median, min),
   after (median), in MB/s and msg/s; ratios during/before, min/before and
   after/before.
6. Checks at the end: every broker's Metadata lists each partition with
   replicas [3,4] / [4,3]; brokers 1 and 2 no longer hold a directory of
   the topic's partitions (waited for up to 30 s).

Prints the command line, the setup and a Markdown table (one row per run,
and the medians over runs), and writes the JSON (with every per-second
sample and the timeline of each run) to --out if given.
"""
import argparse
import collections
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster_figures as cf  # noqa: E402  (clusters, wire Metadata, helpers)
import replication_figures as rf  # noqa: E402  (sluice with env, Metadata with ISR, logs)

import confluent_kafka  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

ROOT = cf.ROOT
BROKERS = 4
PARTITIONS = 8
RF = 2
OLD, NEW = (1, 2), (3, 4)
VALUE_SIZE = 1024
MB = 1024 * 1024
QUEUE_MESSAGES = 50_000
BURST = 1000               # produce() calls between clock checks
FLUSH_S = 30               # bound on the load's final flush
PRELOAD_DEADLINE_S = 900
POLL_S = 0.2               # Metadata polling during the move
VERIFY_EVERY_S = 2.0
TOOL_TIMEOUT_S = 180
OLD_DIRS_DEADLINE_S = 30
SYNC_DEADLINE_S = 120
REASSIGN_TOOL = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
TOPIC_TOOL = "org.apache.kafka.tools.TopicCommand"

log = rf.log


def target_of(p):
    return list(NEW) if p % 2 == 0 else list(NEW[::-1])


def source_of(p):
    return list(OLD) if p % 2 == 0 else list(OLD[::-1])


# --- the cluster ---------------------------------------------------------------

class Sluice(rf.Sluice):
    """replication_figures' `sluice serve` cluster (extra SLUICE_...
    environment for every broker) with `brokers` nodes instead of three:
    node ids 1..brokers, all controller voters."""

    def __init__(self, binary, root, env, brokers=BROKERS):
        super().__init__(binary, root, env)
        self.ids = tuple(range(1, brokers + 1))
        ports = cf.free_ports(3 * brokers)
        self.kafka = {i: ports[i - 1] for i in self.ids}
        self.admin = {i: ports[brokers + i - 1] for i in self.ids}
        self.rpc = {i: ports[2 * brokers + i - 1] for i in self.ids}
        self.voters = ",".join(f"{i}@127.0.0.1:{self.rpc[i]}" for i in self.ids)

    def start(self):
        for i in self.ids:
            self.start_node(i)

    def data(self, i):
        return self.root / f"node-{i}" / "data"

    def logs(self):
        return [self.root / f"node-{i}" / "stderr.log" for i in self.ids]


def wait_ready(cluster, deadline_s=cf.READY_DEADLINE_S):
    """Until every broker lists all of them and they name one controller
    (cluster_figures.wait_ready, for any number of brokers)."""
    end = time.monotonic() + deadline_s
    while True:
        cluster.check_running()
        view = cf.cluster_view(cluster, cluster.ids)
        if all(v is not None and v[0] == list(cluster.ids) for v in view.values()):
            named = {v[1] for v in view.values()}
            if len(named) == 1 and min(named) in cluster.ids:
                return named.pop()
        if time.monotonic() > end:
            raise TimeoutError(f"the cluster is not ready after {deadline_s} s: {view}")
        time.sleep(0.05)


def wait_in_sync(cluster, topic, deadline_s=SYNC_DEADLINE_S):
    end = time.monotonic() + deadline_s
    while not rf.in_sync(cluster, topic, PARTITIONS, RF, ids=cluster.ids):
        cluster.check_running()
        if time.monotonic() > end:
            raise TimeoutError(f"{topic}: not all {PARTITIONS} partitions with {RF} in-sync "
                               f"replicas after {deadline_s} s")
        time.sleep(0.1)


def topic_bytes(cluster, topic, i):
    """Bytes of the topic's segment files (*.log) in broker i's data dir."""
    total = 0
    for f in (cluster.data(i) / topic).glob("*/*.log"):
        try:
            total += f.stat().st_size
        except OSError:  # a segment removed meanwhile
            pass
    return total


def views(conns, topic):
    """Per broker: rf.metadata_isr of topic, or None if it did not answer."""
    out = {}
    for i, conn in conns.items():
        try:
            out[i] = rf.metadata_isr(conn, topic, 1.0)
        except OSError:
            out[i] = None
    return out


def replicas_are(view, want, in_sync):
    """True when every broker lists each partition p with replicas want(p)
    (in that order), a leader among them and (in_sync) all in the ISR."""
    for parts in view.values():
        if parts is None or len(parts) != PARTITIONS:
            return False
        for p in range(PARTITIONS):
            if p not in parts:
                return False
            perr, leader, replicas, isr = parts[p]
            if perr != 0 or replicas != want(p) or leader not in replicas:
                return False
            if in_sync and sorted(isr) != sorted(replicas):
                return False
    return True


def move_seen(view):
    return any(parts and any(set(v[2]) & set(NEW) for v in parts.values())
               for parts in view.values())


# --- Kafka's tools -------------------------------------------------------------

class Tools:
    """Kafka's command-line tools through scripts/kafka-oracle (each one a
    JVM; the oracle execs it, so the pid is the JVM's). Every one started
    in the background is tracked and stopped by pid by stop_all()."""

    def __init__(self, cluster, tmp):
        self.bootstrap = cf.bootstrap(cluster, cluster.ids)
        self.tmp = Path(tmp)
        self.jobs = []
        self.n = 0

    def cmd(self, cls, args):
        return [str(cf.ORACLE), "tool", cls, "--bootstrap-server", self.bootstrap, *args]

    def run(self, cls, *args):
        """In the foreground (subprocess.run kills it on a timeout or an
        exception): (exit status, stdout, stderr)."""
        p = subprocess.run(self.cmd(cls, args), stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=TOOL_TIMEOUT_S)
        return p.returncode, p.stdout, p.stderr

    def start(self, cls, *args):
        self.n += 1
        out, err = self.tmp / f"tool-{self.n}.out", self.tmp / f"tool-{self.n}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            # No preexec_fn (cluster_figures' die-with-parent): the load
            # thread runs meanwhile, and preexec_fn is unsafe with threads.
            # These JVMs exit by themselves within seconds anyway.
            proc = subprocess.Popen(self.cmd(cls, args), stdin=subprocess.DEVNULL, stdout=o,
                                    stderr=e)
        job = {"proc": proc, "out": out, "err": err, "started": time.monotonic(),
               "what": f"{cls.rsplit('.', 1)[-1]} {' '.join(args)}"}
        self.jobs.append(job)
        return job

    def done(self, job):
        """(exit status, stdout, stderr) once job has exited, else None;
        past TOOL_TIMEOUT_S it is stopped and TimeoutError raised."""
        proc = job["proc"]
        if proc.poll() is None:
            if time.monotonic() - job["started"] > TOOL_TIMEOUT_S:
                self.stop_all()
                raise TimeoutError(f"{job['what']}: still running after {TOOL_TIMEOUT_S} s")
            return None
        self.jobs.remove(job)
        return (proc.returncode, job["out"].read_text(errors="replace"),
                job["err"].read_text(errors="replace"))

    def stop_all(self):
        pids = [j["proc"].pid for j in self.jobs if j["proc"].poll() is None]
        if pids:
            cf.stop_pids(pids, grace=10)
        for j in self.jobs:
            try:
                j["proc"].wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.jobs = []


def create_topic(tools, cluster, topic):
    assignment = ",".join(":".join(map(str, source_of(p))) for p in range(PARTITIONS))
    rc, out, err = tools.run(TOPIC_TOOL, "--create", "--topic", topic,
                             "--replica-assignment", assignment)
    if rc != 0:
        raise RuntimeError(f"TopicCommand --create: exit {rc}: {(out + err).strip()[-800:]}")
    wait_in_sync(cluster, topic)


def completed(text, topic):
    return sum(f"Reassignment of partition {topic}-{p} is completed" in text
               for p in range(PARTITIONS))


# --- the load generator ----------------------------------------------------------

class Load(threading.Thread):
    """One confluent-kafka producer (acks=all, linger 5 ms) in a thread:
    keyless VALUE_SIZE-byte values, closed loop or open loop at `rate`
    msg/s, until stop_at (monotonic; the caller may move it), halt, or
    `limit` messages. acked_at[k] is the number of messages acknowledged
    by second k + 1 since t0."""

    def __init__(self, bootstrap, topic, label, run_for, rate=None, limit=None):
        super().__init__(name=label, daemon=True)
        self.topic, self.label, self.run_for, self.rate, self.limit = topic, label, run_for, rate, limit
        self.conf = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                     "enable.idempotence": False, "message.timeout.ms": 60000,
                     "queue.buffering.max.messages": QUEUE_MESSAGES,
                     "delivery.report.only.error": True, "on_delivery": self.delivered,
                     "error_cb": self.client_error, "log_level": 3}
        self.t0 = self.stop_at = self.ended_s = None
        self.ready = threading.Event()
        self.halt = threading.Event()
        self.acked_at = []
        self.sent = self.failed = 0
        self.acked = self.unacked = None
        self.errors = collections.Counter()
        self.error = None

    def delivered(self, err, _msg):  # failures only (delivery.report.only.error)
        if err is not None:
            self.failed += 1
            self.errors[err.name()] += 1

    def client_error(self, err):
        self.errors[f"client {err.name()}"] += 1

    def check(self):
        if self.error is not None:
            raise RuntimeError(f"{self.label}: {self.error}")

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - raised in the main thread by check()
            self.error = repr(e)
        finally:
            self.ready.set()

    def _run(self):
        p = Producer(self.conf)
        value = os.urandom(VALUE_SIZE)
        topic, produce, poll = self.topic, p.produce, p.poll
        rate, limit = self.rate, self.limit
        sent = 0
        t0 = time.monotonic()
        self.t0, self.stop_at = t0, t0 + self.run_for
        self.ready.set()
        tick = t0 + 1.0
        try:
            while True:
                now = time.monotonic()
                while now >= tick:
                    self.acked_at.append(sent - len(p) - self.failed)
                    tick += 1.0
                    k = len(self.acked_at)
                    if k % 5 == 0:
                        last = self.acked_at[-1] - (self.acked_at[-6] if k > 5 else 0)
                        log(f"    {self.label} {k} s: {last / 5 * VALUE_SIZE / MB:.1f} MB/s "
                            f"(last 5 s), {self.failed} failed")
                if now >= self.stop_at or self.halt.is_set() or (limit is not None and sent >= limit):
                    break
                n = BURST
                if rate:
                    n = min(n, int((now - t0) * rate) - sent)
                    if n <= 0:
                        poll(0.001)
                        continue
                if limit is not None:
                    n = min(n, limit - sent)
                for _ in range(n):
                    try:
                        produce(topic, value)
                    except BufferError:
                        poll(0.005)
                        break
                    sent += 1
                self.sent = sent
                poll(0)
        finally:
            self.sent = sent
            self.ended_s = time.monotonic() - t0
            self.unacked = p.flush(FLUSH_S)
            self.acked = sent - len(p) - self.failed

    def wait(self, deadline_s):
        """Joins the thread, at most deadline_s (plus the final flush)."""
        end = time.monotonic() + deadline_s + FLUSH_S + 10
        while self.is_alive() and time.monotonic() < end:
            self.join(timeout=0.5)
        if self.is_alive():
            raise TimeoutError(f"{self.label}: did not stop in time")
        self.check()


def preload(args, cluster, topic):
    n = args.preload_mb * MB // VALUE_SIZE
    t0 = time.monotonic()
    pre = Load(cf.bootstrap(cluster, cluster.ids), topic, "preload", PRELOAD_DEADLINE_S, limit=n)
    pre.start()
    try:
        pre.wait(PRELOAD_DEADLINE_S)
    finally:
        pre.halt.set()
    took = time.monotonic() - t0
    if pre.sent < n or pre.unacked or pre.failed:
        raise RuntimeError(f"preload: {pre.sent} of {n} sent, {pre.failed} failed, {pre.unacked} "
                           f"unanswered ({dict(pre.errors)})")
    log(f"  preload: {n} messages ({args.preload_mb} MiB) in {took:.1f} s "
        f"({args.preload_mb / took:.1f} MB/s)")
    return {"messages": n, "mib": args.preload_mb, "s": round(took, 1),
            "mb_per_s": round(args.preload_mb / took, 1)}


# --- one run ----------------------------------------------------------------------

def reassign(args, cluster, tools, topic, plan, load, res):
    """Starts the move and follows it until --verify reports it complete;
    fills res["timeline"] (seconds since the load started)."""
    tl = res["timeline"]

    def rel():
        return round(time.monotonic() - load.t0, 2)

    conns = {i: cf.Wire(cluster.kafka[i]) for i in cluster.ids}
    execute = ["--reassignment-json-file", str(plan), "--execute"]
    if args.throttle >= 0:
        execute += ["--throttle", str(args.throttle)]
    try:
        res["source_mib_at_start"] = round(topic_bytes(cluster, topic, OLD[0]) / MB, 1)
        end = time.monotonic() + args.timeout
        tl["execute_called_s"] = rel()
        job = tools.start(REASSIGN_TOOL, *execute)
        verify_job, next_verify, verifies, last_verify = None, None, 0, ""
        while True:
            now = time.monotonic()
            if now > end:
                raise TimeoutError(f"the reassignment is not complete {args.timeout} s after --execute "
                                   f"(timeline {tl}; last --verify: {last_verify.strip()[-600:]})")
            load.check()
            cluster.check_running()
            if job is not None:
                r = tools.done(job)
                if r is not None:
                    job = None
                    tl["execute_returned_s"] = rel()
                    rc, out, err = r
                    if rc != 0 or "Successfully started partition reassignment" not in out:
                        raise RuntimeError(f"--execute: exit {rc}: {(out + err).strip()[-800:]}")
                    if args.verify_during:
                        next_verify = now + VERIFY_EVERY_S
            if "moved_s" not in tl:
                view = views(conns, topic)
                if "seen_s" not in tl and move_seen(view):
                    tl["seen_s"] = rel()
                    log(f"  move seen at {tl['seen_s']} s")
                if replicas_are(view, target_of, in_sync=True):
                    tl["moved_s"] = rel()
                    moved = {i: topic_bytes(cluster, topic, i) for i in NEW}
                    res["moved_mib_per_broker"] = {i: round(b / MB, 1) for i, b in moved.items()}
                    res["moved_mib"] = round(sum(moved.values()) / MB, 1)
                    log(f"  moved at {tl['moved_s']} s ({res['moved_mib']} MiB on brokers 3 and 4)")
                    if next_verify is None or next_verify > now:
                        next_verify = now
            if job is None and verify_job is None and next_verify is not None and now >= next_verify:
                verify_job = tools.start(REASSIGN_TOOL, "--reassignment-json-file", str(plan), "--verify")
                verifies += 1
            elif verify_job is not None:
                r = tools.done(verify_job)
                if r is not None:
                    verify_job = None
                    rc, out, err = r
                    last_verify = out + err
                    next_verify = time.monotonic() + VERIFY_EVERY_S
                    if rc == 0 and completed(out, topic) == PARTITIONS and "verified_s" not in tl:
                        tl["verified_s"] = rel()
                        res["throttles_cleared"] = "Clearing broker-level throttles" in out
                        log(f"  --verify: all {PARTITIONS} completed at {tl['verified_s']} s")
            if "verified_s" in tl:
                if "moved_s" in tl:
                    break
                if rel() - tl["verified_s"] > 10:
                    raise RuntimeError("--verify reports the move complete, but 10 s later Metadata "
                                       "does not show every partition on its target replicas in sync")
            time.sleep(POLL_S)
        res["verify_runs"] = verifies
    finally:
        for c in conns.values():
            c.close()


def final_checks(cluster, topic, res):
    conns = {i: cf.Wire(cluster.kafka[i]) for i in cluster.ids}
    try:
        view = views(conns, topic)
    finally:
        for c in conns.values():
            c.close()
    res["final_replicas_ok"] = replicas_are(view, target_of, in_sync=False)
    res["final_replicas"] = {i: ({p: v[2] for p, v in sorted(parts.items())} if parts else None)
                             for i, parts in view.items()}
    end = time.monotonic() + OLD_DIRS_DEADLINE_S
    while True:
        left = [f"broker {i} partition {p}" for i in OLD for p in range(PARTITIONS)
                if (cluster.data(i) / topic / str(p)).exists()]
        if not left or time.monotonic() > end:
            break
        time.sleep(0.5)
    res["old_dirs_left"] = left


def window(per, lo, hi, fallback_overlap=False):
    """Samples of the whole seconds [k, k+1) inside [lo, hi]; with
    fallback_overlap, those overlapping it if none is inside."""
    ks = [k for k in range(len(per)) if k >= lo and k + 1 <= hi]
    if not ks and fallback_overlap:
        ks = [k for k in range(len(per)) if k + 1 > lo and k < hi]
    return [per[k] for k in ks]


def stats(samples):
    if not samples:
        return None
    med = statistics.median(samples)
    return {"seconds": len(samples), "median_msgs_per_s": round(med),
            "min_msgs_per_s": min(samples), "max_msgs_per_s": max(samples),
            "median_mb_per_s": round(med * VALUE_SIZE / MB, 2),
            "min_mb_per_s": round(min(samples) * VALUE_SIZE / MB, 2)}


def figures(args, load, res):
    per = [b - a for a, b in zip([0] + load.acked_at, load.acked_at)]
    res["per_second_msgs"] = per
    tl = res["timeline"]
    end = len(per)
    moved = tl.get("moved_s")
    start = tl.get("seen_s", tl.get("execute_returned_s", tl.get("execute_called_s", end)))
    res["before"] = stats(window(per, args.warmup, tl.get("execute_called_s", end)))
    res["during"] = stats(window(per, start, moved if moved is not None else end, True))
    res["after"] = stats(window(per, moved, end)) if moved is not None else None
    if "seen_s" in tl and moved is not None:
        res["reassign_s"] = round(moved - tl["seen_s"], 2)
    if "execute_called_s" in tl and moved is not None:
        res["execute_to_moved_s"] = round(moved - tl["execute_called_s"], 2)
    if "execute_called_s" in tl and "execute_returned_s" in tl:
        res["execute_tool_s"] = round(tl["execute_returned_s"] - tl["execute_called_s"], 2)
    b = res["before"]
    if b and b["median_msgs_per_s"]:
        for name, side, key in (("during_over_before", "during", "median_msgs_per_s"),
                                ("during_min_over_before", "during", "min_msgs_per_s"),
                                ("after_over_before", "after", "median_msgs_per_s")):
            if res.get(side):
                res[name] = round(res[side][key] / b["median_msgs_per_s"], 3)


def run_once(args, n, root, runs):
    res = {"run": n, "timeline": {}}
    runs.append(res)
    env = {"SLUICE_LOG__FLUSH": args.flush} if args.flush else {}
    cluster = Sluice(args.sluice, root / f"run-{n}", env)
    tools = Tools(cluster, root)
    load = None
    t_run = time.monotonic()
    try:
        cluster.start()
        wait_ready(cluster)
        topic = f"reassign-{uuid.uuid4().hex[:8]}"
        res["topic"] = topic
        create_topic(tools, cluster, topic)
        res["preload"] = preload(args, cluster, topic)
        wait_in_sync(cluster, topic)
        plan = root / f"plan-{n}.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": topic, "partition": p, "replicas": target_of(p)} for p in range(PARTITIONS)]}))
        cap = max(args.duration, args.start_after + args.timeout + args.after + 5)
        load = Load(cf.bootstrap(cluster, cluster.ids), topic, "load", cap, rate=args.rate)
        load.start()
        if not load.ready.wait(60) or load.t0 is None:
            load.check()
            raise RuntimeError("the load generator did not start")
        while time.monotonic() < load.t0 + args.start_after:
            load.check()
            cluster.check_running()
            time.sleep(0.1)
        try:
            reassign(args, cluster, tools, topic, plan, load, res)
        except Exception:
            load.halt.set()
            raise
        load.stop_at = load.t0 + max(args.duration, res["timeline"]["moved_s"] + args.after)
        load.wait(max(0.0, load.stop_at - time.monotonic()))
        res["timeline"]["load_end_s"] = round(load.ended_s, 2)
        final_checks(cluster, topic, res)
    except Exception as e:  # noqa: BLE001 - reported with what was measured
        res["error"] = repr(e)
        log(f"run {n}: {e!r}")
    finally:
        if load is not None:
            load.halt.set()
            try:
                load.wait(10)
            except Exception as e:  # noqa: BLE001
                res.setdefault("error", repr(e))
        tools.stop_all()
        stopped = cluster.stop()
        log(f"run {n}: cluster stopped in {stopped['stop_s']} s ({stopped['sigkilled']} SIGKILLed)")
        res["log_hits"] = {Path(p).parent.name: {"lines": k, "first": lines}
                           for p, k, lines in rf.grep_logs(cluster.logs())}
        if load is not None and load.t0 is not None:
            res["load"] = {"sent": load.sent, "acked": load.acked, "failed": load.failed,
                           "unanswered": load.unacked, "errors": dict(load.errors),
                           "rate": args.rate}
            figures(args, load, res)
        res["wall_s"] = round(time.monotonic() - t_run, 1)
    return res


# --- main ----------------------------------------------------------------------

SUMMARY_KEYS = [
    ("before MB/s", ("before", "median_mb_per_s"), "{:.1f}"),
    ("before msg/s", ("before", "median_msgs_per_s"), "{:.0f}"),
    ("during MB/s (median)", ("during", "median_mb_per_s"), "{:.1f}"),
    ("during MB/s (min)", ("during", "min_mb_per_s"), "{:.1f}"),
    ("during msg/s (median)", ("during", "median_msgs_per_s"), "{:.0f}"),
    ("during msg/s (min)", ("during", "min_msgs_per_s"), "{:.0f}"),
    ("after MB/s", ("after", "median_mb_per_s"), "{:.1f}"),
    ("after msg/s", ("after", "median_msgs_per_s"), "{:.0f}"),
    ("during/before", ("during_over_before",), "{:.2f}"),
    ("min/before", ("during_min_over_before",), "{:.2f}"),
    ("after/before", ("after_over_before",), "{:.2f}"),
    ("reassignment s", ("reassign_s",), "{:.1f}"),
    ("moved MiB", ("moved_mib",), "{:.0f}"),
]


def get(res, path):
    v = res
    for k in path:
        v = v.get(k) if isinstance(v, dict) else None
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="fresh clusters, one move each")
    ap.add_argument("--duration", type=int, default=60, help="seconds of load (at least)")
    ap.add_argument("--start-after", type=float, default=15, help="seconds of load before --execute")
    ap.add_argument("--warmup", type=float, default=5, help="first seconds of load not counted")
    ap.add_argument("--after", type=float, default=10,
                    help="seconds of load at least after the move (extends --duration)")
    ap.add_argument("--preload-mb", type=int, default=256, help="MiB written before the load")
    ap.add_argument("--throttle", type=int, default=50_000_000,
                    help="--throttle of the reassignment, bytes/s per broker; -1: none")
    ap.add_argument("--timeout", type=float, default=300, help="seconds from --execute to completion")
    ap.add_argument("--rate", type=int, help="load msg/s (open loop); default closed loop")
    ap.add_argument("--verify-during", action="store_true",
                    help="also run --verify every 2 s while the move is in progress")
    ap.add_argument("--flush", choices=["always", "never"], help="sluice log.flush (default: its own)")
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--out")
    args = ap.parse_args()
    command = shlex.join(["python3"] + sys.argv)
    print(f"    {command}\n", flush=True)
    if not os.access(args.sluice, os.X_OK):
        sys.exit(f"{args.sluice}: no such executable (cargo build --release)")
    if args.start_after < args.warmup + 2:
        sys.exit("--start-after must leave at least 2 s of load after --warmup")
    args.sluice = os.path.abspath(args.sluice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    started = time.monotonic()
    (ROOT / "target").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="reassignment-figures-", dir=ROOT / "target"))
    setup = {
        "sluice": f"{cf.sluice_version(args.sluice)} (work tree {cf.git_rev()})",
        "brokers": BROKERS, "sluice_shards_per_broker": 1, "controller_voters": BROKERS,
        "log_flush": args.flush or "sluice default",
        "cpus": os.cpu_count(), "pinned": False,
        "topic": f"{PARTITIONS} partitions, RF {RF}, [1,2]/[2,1] -> [3,4]/[4,3]",
        "generator": "1 confluent-kafka producer in this script, acks=all, linger 5 ms, "
                     f"{VALUE_SIZE} B values, no idempotence, at most {QUEUE_MESSAGES} queued, "
                     + (f"open loop {args.rate} msg/s" if args.rate else "closed loop"),
        "preload_mib": args.preload_mb, "throttle_bytes_per_s": args.throttle if args.throttle >= 0 else None,
        "duration_s": args.duration, "start_after_s": args.start_after, "warmup_s": args.warmup,
        "after_s": args.after, "timeout_s": args.timeout, "verify_during": args.verify_during,
        "runs": args.runs,
        "client": f"confluent-kafka {cf.client_version()}, librdkafka {confluent_kafka.libversion()[0]}",
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    runs, notes = [], []
    try:
        for n in range(1, args.runs + 1):
            log(f"run {n} of {args.runs}")
            run_once(args, n, root, runs)
    except KeyboardInterrupt:
        notes.append("interrupted (Ctrl-C): partial results")
        log("interrupted")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    elapsed = time.monotonic() - started
    setup["wall_s"] = round(elapsed)
    print("## Setup\n")
    for key, v in setup.items():
        print(f"- {key}: {v}")

    print("\n## Throughput during a reassignment (medians of per-second samples; "
          "before = warmup to --execute, during = move seen to moved, after = moved to end)\n")
    print("| run | " + " | ".join(k for k, _, _ in SUMMARY_KEYS)
          + " | --verify ok | replicas ok | old dirs gone | failed msgs | error |")
    print("|---|" + "---|" * (len(SUMMARY_KEYS) + 5))

    def cell(v, fmt):
        return "-" if v is None else fmt.format(v)

    for r in runs:
        print(f"| {r['run']} | " + " | ".join(cell(get(r, p), f) for _, p, f in SUMMARY_KEYS)
              + f" | {'yes' if 'verified_s' in r['timeline'] else 'no'}"
              + f" | {cell(r.get('final_replicas_ok'), '{}')}"
              + f" | {'-' if 'old_dirs_left' not in r else ('yes' if not r['old_dirs_left'] else 'no: ' + ', '.join(r['old_dirs_left'][:4]))}"
              + f" | {cell(get(r, ('load', 'failed')), '{}')}"
              + f" | {(r.get('error') or '')[:160]} |")
    medians = {}
    for name, path, _ in SUMMARY_KEYS:
        vals = [get(r, path) for r in runs if "error" not in r and get(r, path) is not None]
        if vals:
            medians[name] = statistics.median(vals)
    ok = sum(1 for r in runs if "error" not in r)
    print(f"| median ({ok} ok) | " + " | ".join(cell(medians.get(k), f) for k, _, f in SUMMARY_KEYS)
          + " | | | | | |")

    print("\n## Timelines (seconds since the load started)\n")
    for r in runs:
        print(f"- run {r['run']}: {r['timeline']}; preload {r.get('preload')}; "
              f"source replica {r.get('source_mib_at_start')} MiB; moved per broker "
              f"{r.get('moved_mib_per_broker')}; throttles cleared {r.get('throttles_cleared')}; "
              f"load {r.get('load')}")

    print("\n## Broker log lines with ERROR/WARN/panic (first 8 per broker)\n")
    for r in runs:
        for node, hits in r.get("log_hits", {}).items():
            print(f"- run {r['run']} {node}: {hits['lines']} lines")
            for ln in hits["first"]:
                print(f"    {ln[:400]}")
    for n in notes:
        print(f"\nNOTE: {n}")
    print(f"\nwall time {elapsed:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"command": command, "setup": setup, "runs": runs,
                                              "medians": medians, "notes": notes}, indent=2) + "\n")


if __name__ == "__main__":
    main()
