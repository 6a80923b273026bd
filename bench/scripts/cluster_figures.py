#!/usr/bin/env python3
"""Three figures of a 3-broker cluster on loopback: controller failover,
CreateTopics of 1,000 partitions, idle RSS (sluice, and Apache Kafka 4.x for
the last two).

    python3 bench/scripts/cluster_figures.py [--trials 20] [--partitions 1000]
        [--sluice target/release/sluice] [--skip-kafka] [--probe wire|admin]
        [--out figures.json]

Run from the repository root. Each broker is its own process (sluice node
i: data in D/node-i/data, stdout and stderr in D/node-i/), started by
this script and stopped by pid (SIGTERM, then SIGKILL after a grace) at the
end, also on error; the data directories (under target/) are removed.
Nothing is pinned. The clusters never run at the same time.

1. Controller failover (sluice). Three `sluice serve` processes, node ids
   1-3, all controller voters (`--controller-voters`), one shard each. Per
   trial: wait until every broker lists 3 live brokers and all three name
   the same controller (the quorum leader; DescribeCluster through
   confluent-kafka must name it too), t0 = now, SIGKILL the leader, then
   every ~10 ms (deadline 30 s) try to create a topic (1 partition,
   replication factor 1) through a surviving broker, alternating between
   the two, until one attempt succeeds: the figure is that time. With
   --probe wire (the default) an attempt is one CreateTopics v4 request sent
   straight to the survivor over the Kafka protocol (1 s timeout; a
   non-leader forwards it to the controller, or answers NOT_CONTROLLER at
   once while none is reachable), so the figure holds no client-side
   metadata refresh. With --probe admin an attempt is a fresh confluent-kafka
   AdminClient bootstrapped to the survivor, create_topics with a 0.5 s
   request timeout: librdkafka sends it to the controller the survivor names,
   so an attempt made while the survivor still names the dead leader waits
   out its timeout. Also recorded: when both survivors first name the same
   new controller in Metadata (the election as clients see it). The killed
   broker is then restarted on the same data directory before the next
   trial. Median, p99 (nearest rank), min, max.

2. CreateTopics of PARTITIONS partitions, replication factor 3, on a fresh
   3-broker cluster (sluice, then Kafka via scripts/kafka-oracle, KRaft
   combined mode, heap -Xmx512m -Xms256m): time for
   AdminClient.create_topics to return, and until a Metadata request to
   every broker shows all partitions, each with a leader and no error.
   3 repetitions, fresh topic names, on the same cluster (so the second
   and third run on a cluster already holding 1 and 2 such topics): median
   and range, and the ratio sluice/Kafka of the medians.

   Per broker, also when it first listed every partition (whatever their
   state) and what it reported while not ready (stderr, and in the JSON).

3. Idle RSS: VmRSS (/proc/PID/status) of each broker process (sluice; each
   Kafka JVM, pid from DIR/kafka.pid) once ready and idle 10 s with no
   topic, and 10 s after the first PARTITIONS-partition topic is visible on
   every broker (PARTITIONS*3 replicas over the 3 brokers).

Also reported: how long each cluster takes to exit after SIGTERM to all
three brokers at once at the end (SIGKILL after 60 s).

Prints a table and the JSON (also written to --out).
"""
import argparse
import collections
import ctypes
import json
import math
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import confluent_kafka
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "scripts" / "kafka-oracle"
KAFKA_HEAP = "-Xmx512m -Xms256m"
STOP_GRACE_S = 60
READY_DEADLINE_S = 90
FAILOVER_DEADLINE_S = 30
PROBE_INTERVAL_S = 0.010
IDLE_S = 10
REPEATS = 3

ERRORS = {
    3: "UNKNOWN_TOPIC_OR_PARTITION", 5: "LEADER_NOT_AVAILABLE", 9: "REPLICA_NOT_AVAILABLE", 7: "REQUEST_TIMED_OUT", 8: "BROKER_NOT_AVAILABLE",
    19: "NOT_ENOUGH_REPLICAS", 36: "TOPIC_ALREADY_EXISTS", 38: "INVALID_REPLICATION_FACTOR",
    41: "NOT_CONTROLLER",
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_ports(n):
    """n distinct free loopback ports (all bound at once, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def alive(pid):
    """True while pid runs (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pids(pids, grace=STOP_GRACE_S):
    """SIGTERM to every pid, SIGKILL to those still running after grace;
    seconds until all had exited, and the pids that needed SIGKILL."""
    t0 = time.monotonic()
    killed = []
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    end = time.monotonic() + grace
    for pid in pids:
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        if alive(pid):
            log(f"pid {pid} still runs {grace} s after SIGTERM: SIGKILL")
            killed.append(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return {"stop_s": round(time.monotonic() - t0, 1), "sigkilled": len(killed)}


def nearest_rank(values, q):
    s = sorted(values)
    return s[min(len(s), max(1, math.ceil(q * len(s) - 1e-9))) - 1]


# --- the Kafka protocol, the two requests needed ---------------------------

class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def nstr(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def i32s(self):
        return [self.i32() for _ in range(self.i32())]


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Wire:
    """One connection to a broker's Kafka listener; reconnects after an
    error. request() raises OSError (socket.timeout included) on failure."""

    def __init__(self, port):
        self.port, self.sock, self.corr = port, None, 0

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _read(self, n, end):
        buf = b""
        while len(buf) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed")
            buf += chunk
        return buf

    def request(self, api_key, version, body, timeout):
        end = time.monotonic() + timeout
        try:
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.corr += 1
            msg = struct.pack(">hhi", api_key, version, self.corr) + kstr("cluster-figures") + body
            self.sock.settimeout(max(0.001, end - time.monotonic()))
            self.sock.sendall(struct.pack(">i", len(msg)) + msg)
            size = struct.unpack(">i", self._read(4, end))[0]
            data = self._read(size, end)
            if struct.unpack_from(">i", data)[0] != self.corr:
                raise ConnectionError("correlation id mismatch")
            return Reader(data[4:])
        except OSError:
            self.close()
            raise


Metadata = collections.namedtuple("Metadata", "brokers controller topics")


def metadata(conn, topics, timeout):
    """Metadata v4: broker ids, controller id, and per topic (error,
    [(partition error, index, leader)])."""
    body = struct.pack(">i", len(topics)) + b"".join(kstr(t) for t in topics) + b"\x00"
    r = conn.request(3, 4, body, timeout)
    r.i32()  # throttle
    brokers = []
    for _ in range(r.i32()):
        brokers.append(r.i32())
        r.nstr(), r.i32(), r.nstr()  # host, port, rack
    r.nstr()  # cluster id
    controller = r.i32()
    out = {}
    for _ in range(r.i32()):
        err, name = r.i16(), r.nstr()
        r.i8()  # is_internal
        parts = []
        for _ in range(r.i32()):
            perr, index, leader = r.i16(), r.i32(), r.i32()
            r.i32s(), r.i32s()  # replicas, isr
            parts.append((perr, index, leader))
        out[name] = (err, parts)
    return Metadata(sorted(brokers), controller, out)


def create_topic(conn, name, partitions, replication, timeout):
    """CreateTopics v4 for one topic; its error code."""
    body = (struct.pack(">i", 1) + kstr(name) + struct.pack(">ihii", partitions, replication, 0, 0)
            + struct.pack(">ib", int(timeout * 1000), 0))
    r = conn.request(19, 4, body, timeout)
    r.i32()  # throttle
    for _ in range(r.i32()):
        n, err = r.nstr(), r.i16()
        r.nstr()
        if n == name:
            return err
    raise ConnectionError("the topic is missing from the answer")


# --- clusters ---------------------------------------------------------------

_PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent():
    # PR_SET_PDEATHSIG: the broker gets SIGTERM if this script dies unclean.
    _PRCTL(1, signal.SIGTERM)


def sluice_version(binary):
    return subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()


class Sluice:
    """Three `sluice serve` processes, node ids 1..3, all controller voters."""

    name = "sluice"

    def __init__(self, binary, root):
        self.binary, self.root = binary, root
        ports = free_ports(9)
        self.kafka = {i: ports[i - 1] for i in (1, 2, 3)}
        self.admin = {i: ports[i + 2] for i in (1, 2, 3)}
        self.rpc = {i: ports[i + 5] for i in (1, 2, 3)}
        self.voters = ",".join(f"{i}@127.0.0.1:{self.rpc[i]}" for i in (1, 2, 3))
        self.procs = {}

    def start(self):
        for i in (1, 2, 3):
            self.start_node(i)

    def start_node(self, i):
        d = self.root / f"node-{i}"
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "stdout.log", "ab") as out, open(d / "stderr.log", "ab") as err:
            self.procs[i] = subprocess.Popen(
                [self.binary, "serve", "--data-dir", str(d / "data"),
                 "--kafka-addr", f"127.0.0.1:{self.kafka[i]}",
                 "--admin-addr", f"127.0.0.1:{self.admin[i]}", "--cores", "1",
                 "--node-id", str(i), "--rpc-addr", f"127.0.0.1:{self.rpc[i]}",
                 "--controller-voters", self.voters],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, preexec_fn=_die_with_parent)

    def pid(self, i):
        return self.procs[i].pid

    def kill(self, i):
        self.procs[i].send_signal(signal.SIGKILL)
        self.procs[i].wait(timeout=10)

    def check_running(self):
        for i, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"sluice node {i} exited with {p.returncode}; "
                                   f"see {self.root}/node-{i}/stderr.log")

    def stop(self):
        stopped = stop_pids([p.pid for p in self.procs.values() if p.poll() is None])
        for p in self.procs.values():
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return stopped

    def version(self):
        return sluice_version(self.binary)


class Kafka:
    """Three Apache Kafka nodes (KRaft combined) through scripts/kafka-oracle."""

    name = "kafka"

    def __init__(self, root):
        self.root = root
        ports = free_ports(6)
        self.kafka = {i: ports[i - 1] for i in (1, 2, 3)}
        self.controller = {i: ports[i + 2] for i in (1, 2, 3)}
        self.voters = ",".join(f"{i}@127.0.0.1:{self.controller[i]}" for i in (1, 2, 3))
        self.env = dict(os.environ, KAFKA_ORACLE_HEAP=KAFKA_HEAP)
        self.env.pop("KAFKA_ORACLE_CPUS", None)  # pin nothing
        self.pids = {}

    def oracle(self, *args, timeout=180):
        return subprocess.run([str(ORACLE), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=True).stdout.strip()

    def dir(self, i):
        return self.root / f"kafka-{i}"

    def start(self):
        cluster_id = self.oracle("cluster-id")
        for i in (1, 2, 3):
            self.dir(i).mkdir(parents=True, exist_ok=True)
            pid = self.oracle("start", "--node-id", str(i), "--voters", self.voters,
                              "--cluster-id", cluster_id, "--port", str(self.kafka[i]),
                              "--data", str(self.dir(i)), "--no-wait")
            self.pids[i] = int(pid.split()[-1])
        for i in (1, 2, 3):
            self.oracle("wait", "--port", str(self.kafka[i]), "--data", str(self.dir(i)))
            self.pids[i] = int((self.dir(i) / "kafka.pid").read_text().strip())

    def pid(self, i):
        return self.pids[i]

    def check_running(self):
        for i, pid in self.pids.items():
            if not alive(pid):
                raise RuntimeError(f"kafka node {i} exited; see {self.dir(i)}/logs")

    def stop(self):
        stopped = stop_pids(list(self.pids.values()))
        for i in self.pids:
            try:  # only removes the pid file now
                self.oracle("stop", "--data", str(self.dir(i)), timeout=60)
            except (subprocess.SubprocessError, OSError) as e:
                log(f"kafka-oracle stop node {i}: {e}")
        return stopped

    def version(self):
        v = ROOT / "target" / "kafka-oracle" / "libs" / "VERSION"
        return "Apache Kafka " + (v.read_text().strip() if v.exists() else "?")


def cluster_view(cluster, ids=(1, 2, 3), timeout=2.0):
    """Per broker: (live broker ids, controller id), or None if it does not
    answer."""
    view = {}
    for i in ids:
        conn = Wire(cluster.kafka[i])
        try:
            md = metadata(conn, [], timeout)
            view[i] = (md.brokers, md.controller)
        except OSError:
            view[i] = None
        finally:
            conn.close()
    return view


def wait_ready(cluster, agree, deadline_s=READY_DEADLINE_S):
    """Until every broker lists the 3 brokers and (agree) all name the same
    controller; that controller's id. Kafka's Metadata names a random live
    broker as controller (KRaft), so it is not compared there."""
    end = time.monotonic() + deadline_s
    while True:
        cluster.check_running()
        view = cluster_view(cluster)
        if all(v is not None and v[0] == [1, 2, 3] for v in view.values()):
            named = {v[1] for v in view.values()}
            if not agree:
                return None
            if len(named) == 1 and min(named) in (1, 2, 3):
                return named.pop()
        if time.monotonic() > end:
            raise TimeoutError(f"the cluster is not ready after {deadline_s} s: {view}")
        time.sleep(0.05)


def bootstrap(cluster, ids=(1, 2, 3)):
    return ",".join(f"127.0.0.1:{cluster.kafka[i]}" for i in ids)


def described_controller(cluster):
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster), "log_level": 4})
    return admin.describe_cluster(request_timeout=5).result(timeout=10).controller.id


def wait_controller(cluster, deadline_s=READY_DEADLINE_S):
    """The quorum leader: all brokers agree in Metadata and DescribeCluster
    names the same broker."""
    end = time.monotonic() + deadline_s
    while True:
        leader = wait_ready(cluster, agree=True, deadline_s=max(1, end - time.monotonic()))
        try:
            if described_controller(cluster) == leader:
                return leader
        except KafkaException:
            pass
        if time.monotonic() > end:
            raise TimeoutError("DescribeCluster and Metadata do not agree on the controller")
        time.sleep(0.1)


# --- 1. controller failover -------------------------------------------------

def attempt_wire(conns, target, name):
    try:
        err = create_topic(conns[target], name, 1, 1, timeout=1.0)
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return type(e).__name__
    return err if err in (0, 36) else ERRORS.get(err, f"error {err}")


def attempt_admin(cluster, target, name):
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster, [target]), "log_level": 0})
    try:
        admin.create_topics([NewTopic(name, 1, 1)], request_timeout=0.5)[name].result(timeout=2)
        return 0
    except KafkaException as e:
        code = e.args[0].code()
        return 36 if code == 36 else e.args[0].name()
    except Exception as e:  # a future that does not resolve in time
        return type(e).__name__


def failover_trial(cluster, k, probe):
    leader = wait_controller(cluster)
    survivors = [i for i in (1, 2, 3) if i != leader]
    conns = {i: Wire(cluster.kafka[i]) for i in survivors}
    name = f"failover-{k}-{uuid.uuid4().hex[:8]}"
    errors = collections.Counter()
    election = None
    attempts = 0
    t0 = time.monotonic()
    cluster.kill(leader)
    end = t0 + FAILOVER_DEADLINE_S
    try:
        while True:
            tick = time.monotonic()
            if tick > end:
                raise TimeoutError(f"trial {k}: no topic created {FAILOVER_DEADLINE_S} s after "
                                   f"killing node {leader} ({dict(errors)})")
            if election is None:
                named = set()
                for i in survivors:
                    try:
                        named.add(metadata(conns[i], [], 0.2).controller)
                    except OSError:
                        named.add(None)
                if len(named) == 1 and next(iter(named)) in survivors:
                    election = (time.monotonic() - t0, next(iter(named)))
            target = survivors[attempts % 2]
            attempts += 1
            if probe == "wire":
                outcome = attempt_wire(conns, target, name)
            else:
                outcome = attempt_admin(cluster, target, name)
            if outcome in (0, 36):
                elapsed = time.monotonic() - t0
                if outcome == 36:  # an earlier attempt committed after its timeout
                    errors["TOPIC_ALREADY_EXISTS (counted)"] += 1
                break
            errors[outcome] += 1
            time.sleep(max(0.0, tick + PROBE_INTERVAL_S - time.monotonic()))
    finally:
        for c in conns.values():
            c.close()
        cluster.start_node(leader)
    new = wait_controller(cluster)
    result = {
        "killed": leader,
        "ms": round(elapsed * 1000, 1),
        "election_seen_ms": round(election[0] * 1000, 1) if election else None,
        "new_controller": new,
        "attempts": attempts,
        "failed_attempts": dict(errors),
    }
    log(f"trial {k}: killed node {leader}, created after {result['ms']} ms "
        f"({attempts} attempts {dict(errors)}), both survivors named node "
        f"{election[1] if election else '?'} after {result['election_seen_ms']} ms")
    return result


def baseline_creates(cluster, probe, n=5):
    """Create latency with nothing killed, the same way the trials do."""
    wait_controller(cluster)
    out = []
    conns = {i: Wire(cluster.kafka[i]) for i in (1, 2, 3)}
    try:
        for k in range(n):
            target = (1, 2, 3)[k % 3]
            name = f"baseline-{k}-{uuid.uuid4().hex[:8]}"
            t0 = time.monotonic()
            outcome = (attempt_wire(conns, target, name) if probe == "wire"
                       else attempt_admin(cluster, target, name))
            if outcome != 0:
                raise RuntimeError(f"a create on a healthy cluster failed: {outcome}")
            out.append(round((time.monotonic() - t0) * 1000, 2))
    finally:
        for c in conns.values():
            c.close()
    return out


def failover(binary, root, trials, probe):
    cluster = Sluice(binary, root / "failover")
    try:
        cluster.start()
        wait_controller(cluster)
        base = baseline_creates(cluster, probe)
        log(f"create on a healthy cluster ({probe}): {base} ms")
        results = [failover_trial(cluster, k, probe) for k in range(trials)]
    finally:
        stopped = cluster.stop()
        log(f"failover cluster: SIGTERM to all three, exited after {stopped['stop_s']} s")
    ms = [r["ms"] for r in results]
    seen = [r["election_seen_ms"] for r in results if r["election_seen_ms"] is not None]
    return {
        "probe": probe,
        "trials": trials,
        "median_ms": statistics.median(ms),
        "p99_ms": nearest_rank(ms, 0.99),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "election_seen_median_ms": statistics.median(seen) if seen else None,
        "healthy_create_ms": base,
        "per_trial": results,
    }


# --- 2 and 3. CreateTopics of many partitions, idle RSS -----------------------

def rss_mib(cluster):
    return {i: round(rss_kib(cluster.pid(i)) / 1024, 1) for i in (1, 2, 3)}


def create_many(cluster, name, partitions, deadline_s=600):
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster), "log_level": 4})
    admin.list_topics(timeout=10)  # connections up before the clock starts
    conns = {i: Wire(cluster.kafka[i]) for i in (1, 2, 3)}
    visible, listed, waiting_on, not_ready = {}, {}, {}, {}
    try:
        t0 = time.monotonic()
        end = t0 + deadline_s
        future = admin.create_topics([NewTopic(name, partitions, 3)],
                                     operation_timeout=deadline_s, request_timeout=deadline_s)[name]
        future.result(timeout=deadline_s)
        returned = time.monotonic() - t0
        while len(visible) < 3:
            if time.monotonic() > end:
                raise TimeoutError(f"{name} not complete on every broker after {deadline_s} s")
            for i in (1, 2, 3):
                if i in visible:
                    continue
                try:
                    md = metadata(conns[i], [name], 30)
                except OSError:
                    continue
                err, parts = md.topics.get(name, (3, []))
                if err == 0 and len(parts) == partitions and i not in listed:
                    listed[i] = time.monotonic() - t0
                bad = collections.Counter(
                    ERRORS.get(e, f"error {e}") if e else "no leader"
                    for e, _, leader in parts if e != 0 or leader < 0)
                if err == 0 and len(parts) == partitions and not bad:
                    visible[i] = time.monotonic() - t0
                    waiting_on.pop(i, None)
                elif err:
                    waiting_on[i] = (f"topic error {ERRORS.get(err, err)}", "")
                else:
                    waiting_on[i] = (f"{len(parts)} partitions listed, not ready: {sorted(bad)}",
                                     f" {dict(bad)}")
            for i, (kind, counts) in waiting_on.items():
                seen = not_ready.setdefault(i, [])
                if (not seen or seen[-1][1] != kind) and len(seen) < 20:
                    seen.append((round((time.monotonic() - t0) * 1000), kind))
                    log(f"  {name} on broker {i} at {seen[-1][0]} ms: {kind}{counts}")
            if len(visible) < 3:
                time.sleep(0.01)
    finally:
        for c in conns.values():
            c.close()
    return {"topic": name, "create_returned_ms": round(returned * 1000, 1),
            "visible_everywhere_ms": round(max(visible.values()) * 1000, 1),
            "visible_per_broker_ms": {i: round(t * 1000, 1) for i, t in sorted(visible.items())},
            "listed_per_broker_ms": {i: round(t * 1000, 1) for i, t in sorted(listed.items())},
            "not_ready_seen": {i: [f"{ms} ms: {kind}" for ms, kind in v] for i, v in sorted(not_ready.items())}}


def many_partitions(cluster, partitions):
    try:
        cluster.start()
        wait_ready(cluster, agree=cluster.name == "sluice")
        time.sleep(IDLE_S)
        cluster.check_running()
        rss_empty = rss_mib(cluster)
        reps, rss_full = [], None
        for r in range(REPEATS):
            name = f"many-{r}-{uuid.uuid4().hex[:8]}"
            rep = create_many(cluster, name, partitions)
            log(f"{cluster.name} rep {r}: {rep}")
            reps.append(rep)
            if r == 0:
                time.sleep(IDLE_S)
                cluster.check_running()
                rss_full = rss_mib(cluster)
        cluster.check_running()
    finally:
        stopped = cluster.stop()
        log(f"{cluster.name}: SIGTERM to all three, exited after {stopped['stop_s']} s, "
            f"{stopped['sigkilled']} needed SIGKILL")
    created = [r["create_returned_ms"] for r in reps]
    visible = [r["visible_everywhere_ms"] for r in reps]
    return {
        "version": cluster.version(),
        "create_returned_ms": {"median": statistics.median(created), "min": min(created),
                               "max": max(created), "runs": created},
        "visible_everywhere_ms": {"median": statistics.median(visible), "min": min(visible),
                                  "max": max(visible), "runs": visible},
        "reps": reps,
        "rss_mib_idle_empty": rss_empty,
        "rss_mib_idle_with_topic": rss_full,
        "shutdown": stopped,
    }


# --- main -------------------------------------------------------------------

def fmt_range(d):
    return f"{d['median']:.0f} ({d['min']:.0f}-{d['max']:.0f})"


def fmt_rss(d):
    return " / ".join(f"{d[i]:.0f}" for i in (1, 2, 3)) + f"  (sum {sum(d.values()):.0f})"


def client_version():
    v = confluent_kafka.version()  # a string, or (string, int) in older releases
    return v if isinstance(v, str) else v[0]


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--skip-kafka", action="store_true")
    ap.add_argument("--probe", choices=["wire", "admin"], default="wire")
    ap.add_argument("--out")
    args = ap.parse_args()
    if not os.access(args.sluice, os.X_OK):
        sys.exit(f"{args.sluice}: no such executable (cargo build --release)")
    binary = os.path.abspath(args.sluice)
    # SIGTERM ends the run through the finally blocks, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    (ROOT / "target").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="cluster-figures-", dir=ROOT / "target"))
    try:
        result = {"setup": {
            "sluice": f"{sluice_version(binary)} (work tree {git_rev()})",
            "brokers": 3, "sluice_cores_per_broker": 1, "kafka_heap": KAFKA_HEAP,
            "cpus": os.cpu_count(), "pinned": False,
            "client": f"confluent-kafka {client_version()}, librdkafka {confluent_kafka.libversion()[0]}",
            "partitions": args.partitions, "replication_factor": 3, "repeats": REPEATS,
            "idle_s": IDLE_S,
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        }}
        result["failover"] = failover(binary, root, args.trials, args.probe)
        result["sluice"] = many_partitions(Sluice(binary, root / "many"), args.partitions)
        if not args.skip_kafka:
            kafka = Kafka(root / "kafka")
            result["kafka"] = many_partitions(kafka, args.partitions)
            result["setup"]["kafka"] = result["kafka"]["version"]
            result["ratio_sluice_over_kafka"] = {
                k: round(result["sluice"][k]["median"] / result["kafka"][k]["median"], 3)
                for k in ("create_returned_ms", "visible_everywhere_ms")}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    f = result["failover"]
    print(f"3 brokers on loopback, {os.cpu_count()} CPUs, nothing pinned; {result['setup']['sluice']}")
    print(f"controller failover (sluice, {f['trials']} trials, probe {f['probe']}): "
          f"SIGKILL of the quorum leader -> next committed CreateTopics")
    print(f"  median {f['median_ms']:.0f} ms, p99 {f['p99_ms']:.0f} ms, "
          f"min {f['min_ms']:.0f} ms, max {f['max_ms']:.0f} ms; both survivors name the new "
          f"leader after median {f['election_seen_median_ms']} ms; "
          f"healthy create {statistics.median(f['healthy_create_ms']):.1f} ms")
    systems = ["sluice"] + ([] if args.skip_kafka else ["kafka"])
    print(f"CreateTopics {args.partitions} partitions x RF 3, {REPEATS} runs, ms median (range):")
    print(f"  {'':28}" + "".join(f"{s:>22}" for s in systems)
          + ("" if args.skip_kafka else f"{'sluice/kafka':>14}"))
    for key, label in (("create_returned_ms", "create_topics returned"),
                       ("visible_everywhere_ms", "+ Metadata on every broker")):
        row = f"  {label:28}" + "".join(f"{fmt_range(result[s][key]):>22}" for s in systems)
        if not args.skip_kafka:
            row += f"{result['ratio_sluice_over_kafka'][key]:>14.2f}"
        print(row)
    print("idle RSS MiB, brokers 1 / 2 / 3:")
    for s in systems:
        print(f"  {s:7} no topic                   {fmt_rss(result[s]['rss_mib_idle_empty'])}")
        print(f"  {s:7} {args.partitions} partitions x RF 3     {fmt_rss(result[s]['rss_mib_idle_with_topic'])}")
    print("SIGTERM to all 3 brokers at the end -> all exited: " + ", ".join(
        f"{s} {result[s]['shutdown']['stop_s']:.1f} s"
        + (f" ({result[s]['shutdown']['sigkilled']} SIGKILLed after {STOP_GRACE_S} s)"
           if result[s]['shutdown']['sigkilled'] else "") for s in systems))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as out:
            out.write(text + "\n")


if __name__ == "__main__":
    main()
