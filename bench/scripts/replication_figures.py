#!/usr/bin/env python3
"""What replication costs sluice, and how fast a partition fails over, on a
3-broker cluster on loopback (sluice, and Apache Kafka 4.x as the baseline).

    python3 bench/scripts/replication_figures.py [--runs 3] [--duration 15]
        [--warmup 10] [--trials 10] [--sluice target/release/sluice]
        [--skip-kafka] [--skip-always] [--skip-failover] [--kafka-failover]
        [--kafka-flush-always]
        [--lat-rate N] [--out figures.json]

Run from the repository root. Every broker is its own process started by
this script (sluice: `sluice serve`, node ids 1-3, all controller voters, one
shard each, as bench/scripts/cluster_figures.py does; Kafka: three KRaft
combined nodes through scripts/kafka-oracle, heap -Xmx512m -Xms256m), and is
stopped by pid (SIGTERM, SIGKILL after a grace) at the end, also on error,
Ctrl-C or SIGTERM. Data lives under target/replication-figures-*/ and is
removed at the end. Nothing is pinned: brokers and the load generator share
the machine's cores. sluice and Kafka never run at the same time.

The load is `sluice bench e2e --workload tput-1k|lat-1k` (1 KiB values,
acks=all, 1 producer + 1 consumer) against a topic this script creates
first (16 partitions; the bench itself would create replication factor 1),
min.insync.replicas=2 on RF 3 topics, a fresh topic per run.

1. Replication cost (sluice, log.flush=always, its default): tput-1k and
   lat-1k on topics with replication factor 3 and 1 on the same 3-broker
   cluster, runs alternating RF 1 / RF 3. Ratio RF3/RF1 of the medians.
2. Against Kafka at equal durability, replication factor 3, acks=all:
   sluice with log.flush=never vs Kafka's default (no fsync per write;
   both rely on replication). With --kafka-flush-always also Kafka with
   log.flush.interval.messages=1 against sluice flush=always (from 1).
   Ratio sluice/Kafka of the medians.
   lat-1k runs open loop at one rate for every configuration: --lat-rate,
   or half of the lowest tput-1k median msg/s measured in section 1.
3. Partition failover (sluice, RF 3, min.insync.replicas=2, 1 partition):
   per trial wait until the partition has a leader and all 3 replicas in
   sync, t0, SIGKILL its leader, then every ~10 ms ask both survivors for
   Metadata (Kafka protocol, v4) until one names another live leader
   ("leader seen"), then try a produce of one record with acks=all through
   a fresh confluent-kafka producer bootstrapped to the survivors (1 s
   message timeout per attempt) until one is acknowledged ("produce ok",
   the figure). The killed broker is restarted on its data and the next
   trial waits until it is back in the ISR. Default session timeout (9000
   ms, heartbeat 2000 ms) and a short one (session 2000 ms, heartbeat 200
   ms), each on a fresh cluster. p50 and p99 (nearest rank), min, max.
   With --kafka-failover the same on Kafka (its defaults).

Prints the setup and a Markdown table of results, and writes the JSON (with
every run) to --out if given.
"""
import argparse
import json
import re
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cluster_figures as cf  # noqa: E402  (clusters, wire Metadata, helpers)

import confluent_kafka  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

ROOT = cf.ROOT
PARTITIONS = 16
FAILOVER_DEADLINE_S = 60
RESYNC_DEADLINE_S = 90
SHORT_TIMING = {"SLUICE_KAFKA__BROKER_HEARTBEAT_INTERVAL_MS": "200",
                "SLUICE_KAFKA__BROKER_SESSION_TIMEOUT_MS": "2000"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --- clusters ----------------------------------------------------------------

class Sluice(cf.Sluice):
    """cluster_figures' three `sluice serve` processes, with extra
    environment (SLUICE_... settings) for every broker."""

    def __init__(self, binary, root, env):
        super().__init__(binary, root)
        self.env = dict(os.environ, **env)

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
                env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=cf._die_with_parent)

    def logs(self):
        return [self.root / f"node-{i}" / "stderr.log" for i in (1, 2, 3)]


class Kafka(cf.Kafka):
    """cluster_figures' three Kafka nodes, with extra server properties and
    single-node kill / restart."""

    def __init__(self, root, configs=()):
        super().__init__(root)
        self.configs = list(configs)
        self.cluster_id = None

    def start_args(self, i):
        args = ["start", "--node-id", str(i), "--voters", self.voters,
                "--cluster-id", self.cluster_id, "--port", str(self.kafka[i]),
                "--data", str(self.dir(i)), "--no-wait"]
        for kv in self.configs:
            args += ["--config", kv]
        return args

    def start(self):
        self.cluster_id = self.oracle("cluster-id")
        for i in (1, 2, 3):
            self.dir(i).mkdir(parents=True, exist_ok=True)
            self.pids[i] = int(self.oracle(*self.start_args(i)).split()[-1])
        for i in (1, 2, 3):
            self.oracle("wait", "--port", str(self.kafka[i]), "--data", str(self.dir(i)))
            self.pids[i] = int((self.dir(i) / "kafka.pid").read_text().strip())

    def start_node(self, i):
        self.pids[i] = int(self.oracle(*self.start_args(i)).split()[-1])
        self.oracle("wait", "--port", str(self.kafka[i]), "--data", str(self.dir(i)))
        self.pids[i] = int((self.dir(i) / "kafka.pid").read_text().strip())

    def kill(self, i):
        os.kill(self.pids[i], signal.SIGKILL)
        while cf.alive(self.pids[i]):
            time.sleep(0.01)

    def logs(self):
        return [self.dir(i) / "logs" / "server.log" for i in (1, 2, 3)]


# --- topics and Metadata with the ISR -----------------------------------------

def metadata_isr(conn, topic, timeout):
    """Metadata v4 for one topic: {partition: (error, leader, replicas, isr)}."""
    body = struct.pack(">i", 1) + cf.kstr(topic) + b"\x00"
    r = conn.request(3, 4, body, timeout)
    r.i32()
    for _ in range(r.i32()):
        r.i32(), r.nstr(), r.i32(), r.nstr()
    r.nstr()
    r.i32()
    out = {}
    for _ in range(r.i32()):
        err, name = r.i16(), r.nstr()
        r.i8()
        for _ in range(r.i32()):
            perr, index, leader = r.i16(), r.i32(), r.i32()
            replicas, isr = r.i32s(), r.i32s()
            if name == topic and err == 0:
                out[index] = (perr, leader, replicas, isr)
    return out


def in_sync(cluster, topic, partitions, rf, ids=(1, 2, 3)):
    """True when every broker in ids lists every partition with a leader
    and rf replicas in the ISR."""
    for i in ids:
        conn = cf.Wire(cluster.kafka[i])
        try:
            parts = metadata_isr(conn, topic, 2.0)
        except OSError:
            return False
        finally:
            conn.close()
        if len(parts) != partitions:
            return False
        for perr, leader, _replicas, isr in parts.values():
            if perr != 0 or leader < 0 or len(isr) < rf:
                return False
    return True


def wait_in_sync(cluster, topic, partitions, rf, deadline_s=RESYNC_DEADLINE_S):
    end = time.monotonic() + deadline_s
    while not in_sync(cluster, topic, partitions, rf):
        cluster.check_running()
        if time.monotonic() > end:
            raise TimeoutError(f"{topic}: not all {partitions} partitions with {rf} in-sync "
                               f"replicas after {deadline_s} s")
        time.sleep(0.05)


def create_topic(cluster, name, partitions, rf):
    admin = AdminClient({"bootstrap.servers": cf.bootstrap(cluster), "log_level": 3})
    config = {"min.insync.replicas": "2"} if rf >= 2 else {}
    admin.create_topics([NewTopic(name, partitions, rf, config=config)],
                        operation_timeout=30, request_timeout=30)[name].result(timeout=40)
    wait_in_sync(cluster, name, partitions, rf, deadline_s=60)


def delete_topic(cluster, name):
    admin = AdminClient({"bootstrap.servers": cf.bootstrap(cluster), "log_level": 3})
    try:
        admin.delete_topics([name], operation_timeout=30)[name].result(timeout=40)
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        log(f"deleting {name}: {e}")


# --- the load generator ----------------------------------------------------------

def bench(args, cluster, workload, rf, rate, label):
    """One `sluice bench e2e` run on a fresh topic; a dict of figures, or
    one with "error"."""
    topic = f"repl-{workload}-rf{rf}-{uuid.uuid4().hex[:8]}"
    create_topic(cluster, topic, PARTITIONS, rf)
    out = Path(args.tmp) / f"{topic}.json"
    cmd = [args.sluice, "bench", "e2e", "--bootstrap", f"127.0.0.1:{cluster.kafka[1]}",
           "--workload", workload, "--topic", topic, "--duration", str(args.duration),
           "--warmup", str(args.warmup), "--json", str(out)]
    if rate:
        cmd += ["--rate", str(rate)]
    res = {"label": label, "workload": workload, "rf": rf, "topic": topic}
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=args.warmup + args.duration + 90)
        if p.returncode != 0 or not out.exists():
            res["error"] = f"exit {p.returncode}: {p.stderr.strip()[-800:]}"
        else:
            r = json.loads(out.read_text())
            prod, cons = r.get("produce") or {}, r.get("consume") or {}
            pl, cl = prod.get("latency_us") or {}, cons.get("latency_us") or {}
            res.update({
                "mb_per_s": prod.get("mb_per_s"), "msgs_per_s": prod.get("msgs_per_s"),
                "consume_mb_per_s": cons.get("mb_per_s"),
                "produce_p50_ms": pl.get("p50", 0) / 1000, "produce_p99_ms": pl.get("p99", 0) / 1000,
                "e2e_p50_ms": cl.get("p50", 0) / 1000, "e2e_p99_ms": cl.get("p99", 0) / 1000,
                "produce_errors": prod.get("errors"), "consume_errors": cons.get("errors"),
                "unsent": prod.get("unsent"),
                "setup": r.get("setup"),
            })
            if prod.get("errors") or cons.get("errors"):
                log(f"  {label}: bench stderr tail: {p.stderr.strip()[-400:]}")
    except subprocess.TimeoutExpired:
        res["error"] = "bench did not finish in time (killed)"
    res["wall_s"] = round(time.monotonic() - t0, 1)
    cluster.check_running()
    delete_topic(cluster, topic)
    log(f"  {label}: " + (res["error"] if "error" in res else
        f"{res['mb_per_s']:.1f} MB/s {res['msgs_per_s']:.0f} msg/s produce p50/p99 "
        f"{res['produce_p50_ms']:.2f}/{res['produce_p99_ms']:.2f} ms e2e p50/p99 "
        f"{res['e2e_p50_ms']:.2f}/{res['e2e_p99_ms']:.2f} ms errors {res['produce_errors']}"
        f"/{res['consume_errors']} unsent {res['unsent']}"))
    return res


def summary(runs, key):
    vals = [r[key] for r in runs if "error" not in r and r.get(key) is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


# --- failover ---------------------------------------------------------------------

def produce_once(cluster, survivors, topic):
    p = Producer({"bootstrap.servers": cf.bootstrap(cluster, survivors), "acks": "all",
                  "message.timeout.ms": 1000, "socket.timeout.ms": 1000,
                  "topic.metadata.refresh.interval.ms": 100, "log_level": 0,
                  "enable.idempotence": False})
    outcome = []
    p.produce(topic, b"x", partition=0,
              on_delivery=lambda err, msg: outcome.append(err))
    p.flush(2.0)
    if outcome and outcome[0] is None:
        return None
    return outcome[0].name() if outcome else "no delivery report"


def failover_trial(cluster, topic, k):
    wait_in_sync(cluster, topic, 1, 3)
    conn = cf.Wire(cluster.kafka[1])
    try:
        leader = metadata_isr(conn, topic, 2.0)[0][1]
    finally:
        conn.close()
    survivors = [i for i in (1, 2, 3) if i != leader]
    conns = {i: cf.Wire(cluster.kafka[i]) for i in survivors}
    errors = {}
    seen = seen_on = ok = None
    attempts = 0
    t0 = time.monotonic()
    cluster.kill(leader)
    try:
        while ok is None:
            tick = time.monotonic()
            if tick - t0 > FAILOVER_DEADLINE_S:
                raise TimeoutError(f"trial {k}: no acks=all produce {FAILOVER_DEADLINE_S} s after "
                                   f"killing node {leader} (leader seen: {seen}; {errors})")
            if seen is None:
                for i in survivors:
                    try:
                        parts = metadata_isr(conns[i], topic, 0.2)
                    except OSError:
                        continue
                    if 0 in parts and parts[0][1] in survivors:
                        seen, seen_on = time.monotonic() - t0, (i, parts[0][1], parts[0][3])
                        break
            if seen is not None:
                attempts += 1
                err = produce_once(cluster, survivors, topic)
                if err is None:
                    ok = time.monotonic() - t0
                    break
                errors[err] = errors.get(err, 0) + 1
            time.sleep(max(0.0, tick + 0.010 - time.monotonic()))
    finally:
        for c in conns.values():
            c.close()
        cluster.start_node(leader)
    t1 = time.monotonic()
    wait_in_sync(cluster, topic, 1, 3)
    r = {"killed": leader, "leader_seen_ms": round(seen * 1000, 1),
         "produce_ok_ms": round(ok * 1000, 1), "new_leader": seen_on[1],
         "isr_seen": seen_on[2], "produce_attempts": attempts, "failed_attempts": errors,
         "restart_to_in_sync_s": round(time.monotonic() - t1, 1)}
    log(f"  trial {k}: killed {leader}, survivor {seen_on[0]} names leader {seen_on[1]} "
        f"(isr {seen_on[2]}) after {r['leader_seen_ms']} ms, acks=all produce ok after "
        f"{r['produce_ok_ms']} ms ({attempts} attempts {errors}); back in sync "
        f"{r['restart_to_in_sync_s']} s after restart")
    return r


def failover(cluster, trials, label):
    topic = f"failover-{uuid.uuid4().hex[:8]}"
    results = []
    try:
        cluster.start()
        cf.wait_ready(cluster, agree=cluster.name == "sluice")
        create_topic(cluster, topic, 1, 3)
        for k in range(trials):
            results.append(failover_trial(cluster, topic, k))
    except Exception as e:  # noqa: BLE001 - reported with the trials done
        log(f"{label}: failover stopped: {e!r}")
        err = repr(e)
    else:
        err = None
    finally:
        stopped = cluster.stop()
        log(f"{label}: stopped in {stopped['stop_s']} s ({stopped['sigkilled']} SIGKILLed)")
    out = {"label": label, "trials": len(results), "per_trial": results, "error": err}
    for key in ("leader_seen_ms", "produce_ok_ms"):
        v = [r[key] for r in results]
        if v:
            out[key] = {"p50": cf.nearest_rank(v, 0.5), "p99": cf.nearest_rank(v, 0.99),
                        "min": min(v), "max": max(v)}
    return out


# --- main --------------------------------------------------------------------

def perf_block(args, cluster, plan, results):
    """plan: [(key, workload, rf, rate)], run args.runs times interleaved."""
    try:
        cluster.start()
        cf.wait_ready(cluster, agree=cluster.name == "sluice")
        for n in range(args.runs):
            for key, workload, rf, rate in plan:
                r = bench(args, cluster, workload, rf, rate if callable(rate) is False else rate(),
                          f"{key} run {n + 1}")
                results.setdefault(key, []).append(r)
    finally:
        stopped = cluster.stop()
        log(f"{cluster.name}: stopped in {stopped['stop_s']} s ({stopped['sigkilled']} SIGKILLed)")


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def grep_logs(paths):
    """ERROR / panic lines, and WARN lines about replicas, ISR or fencing
    (startup WARNs about unreachable voters are expected and left out)."""
    out = []
    for p in paths:
        try:
            lines = ANSI.sub("", Path(p).read_text(errors="replace")).splitlines()
        except OSError:
            continue
        hits = [ln for ln in lines if "ERROR" in ln or "panic" in ln
                or (" WARN " in ln and any(w in ln.lower() for w in ("replica", "isr", "fenc", "fetch", "leader epoch")))]
        if hits:
            out.append((str(p), len(hits), hits[:8]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="runs per configuration")
    ap.add_argument("--duration", type=int, default=15, help="counted seconds per run")
    ap.add_argument("--warmup", type=int, default=10, help="warm-up seconds per run")
    ap.add_argument("--trials", type=int, default=10, help="failover trials per timing")
    ap.add_argument("--lat-rate", type=int, help="lat-1k msg/s (default: half the lowest tput-1k)")
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--skip-kafka", action="store_true")
    ap.add_argument("--skip-lat-kafka", action="store_true", help="no lat-1k on flush=never / Kafka")
    ap.add_argument("--skip-failover", action="store_true")
    ap.add_argument("--skip-always", action="store_true",
                    help="no section 1 (RF 3 vs RF 1 at flush=always); give --lat-rate")
    ap.add_argument("--kafka-failover", action="store_true")
    ap.add_argument("--kafka-trials", type=int, default=5, help="Kafka failover trials")
    ap.add_argument("--kafka-flush-always", action="store_true",
                    help="also Kafka with log.flush.interval.messages=1")
    ap.add_argument("--out")
    args = ap.parse_args()
    if not os.access(args.sluice, os.X_OK):
        sys.exit(f"{args.sluice}: no such executable")
    args.sluice = os.path.abspath(args.sluice)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    started = time.monotonic()
    (ROOT / "target").mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="replication-figures-", dir=ROOT / "target"))
    args.tmp = str(root)
    setup = {
        "sluice": f"{cf.sluice_version(args.sluice)} (work tree {cf.git_rev()})",
        "brokers": 3, "sluice_shards_per_broker": 1, "cpus": os.cpu_count(), "pinned": False,
        "generator": "sluice bench e2e (same binary), 1 producer + 1 consumer, acks=all, "
                     "1 KiB values, tput-1k linger 5 ms batch 256 KiB closed loop, "
                     "lat-1k linger 1 ms open loop",
        "partitions": PARTITIONS, "min_insync_replicas_rf3": 2,
        "runs": args.runs, "duration_s": args.duration, "warmup_s": args.warmup,
        "failover_trials": args.trials,
        "client": f"confluent-kafka {cf.client_version()}, librdkafka {confluent_kafka.libversion()[0]}",
        "kafka_heap": cf.KAFKA_HEAP,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    results, fail, notes = {}, {}, []
    lat_rate = {"v": args.lat_rate}

    def rate():
        if lat_rate["v"] is None:
            t = [summary(results.get(k, []), "msgs_per_s") for k in ("always-tput-rf1", "always-tput-rf3")]
            t = [s["median"] for s in t if s]
            lat_rate["v"] = int(min(t) / 2) if t else 20000
            log(f"lat-1k rate: {lat_rate['v']} msg/s")
        return lat_rate["v"]

    log_hits = {}

    def section(name, fn):
        """Runs one part; an error is reported and the next part still runs."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            notes.append(f"{name} failed: {e!r}")
            log(notes[-1])

    def sluice_always():
        # 1. RF 3 vs RF 1, flush=always: tput first (it sets the lat-1k rate),
        # then lat-1k on a fresh cluster of the same shape and flags.
        for sub, plan in (("always", [("always-tput-rf1", "tput-1k", 1, None),
                                      ("always-tput-rf3", "tput-1k", 3, None)]),
                          ("always-lat", [("always-lat-rf1", "lat-1k", 1, rate),
                                          ("always-lat-rf3", "lat-1k", 3, rate)])):
            c = Sluice(args.sluice, root / sub, {"SLUICE_LOG__FLUSH": "always"})
            try:
                perf_block(args, c, plan, results)
            finally:
                log_hits[f"sluice flush=always ({sub})"] = grep_logs(c.logs())

    def sluice_never():
        plan = [("never-tput-rf3", "tput-1k", 3, None)]
        if not args.skip_lat_kafka:
            plan.append(("never-lat-rf3", "lat-1k", 3, rate))
        c = Sluice(args.sluice, root / "never", {"SLUICE_LOG__FLUSH": "never"})
        try:
            perf_block(args, c, plan, results)
        finally:
            log_hits["sluice flush=never"] = grep_logs(c.logs())

    def kafka_perf():
        k = Kafka(root / "kafka")
        setup["kafka"] = k.version()
        plan = [("kafka-tput-rf3", "tput-1k", 3, None)]
        if not args.skip_lat_kafka:
            plan.append(("kafka-lat-rf3", "lat-1k", 3, rate))
        perf_block(args, k, plan, results)
        if args.kafka_flush_always:
            k = Kafka(root / "kafka-flush", ["log.flush.interval.messages=1"])
            perf_block(args, k, [("kafkaflush-tput-rf3", "tput-1k", 3, None)], results)

    def failovers():
        for label, env in (("sluice session 9000 ms / heartbeat 2000 ms", {}),
                           ("sluice session 2000 ms / heartbeat 200 ms", SHORT_TIMING)):
            c = Sluice(args.sluice, root / f"failover-{len(fail)}", env)
            fail[label] = failover(c, args.trials, label)
            log_hits[f"failover, {label}"] = grep_logs(c.logs())
        if args.kafka_failover and not args.skip_kafka:
            k = Kafka(root / "kafka-failover")
            fail["kafka (defaults: session 9000 ms)"] = failover(k, args.kafka_trials, "kafka")

    try:
        if not args.skip_always:
            section("sluice flush=always", sluice_always)
        section("sluice flush=never", sluice_never)
        if not args.skip_kafka:
            section("Kafka", kafka_perf)
        if not args.skip_failover:
            section("failover", failovers)
    except KeyboardInterrupt:
        notes.append("interrupted (Ctrl-C): partial results")
        log("interrupted")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    elapsed = time.monotonic() - started
    setup["lat_1k_rate_msgs_per_s"] = lat_rate["v"]
    setup["wall_s"] = round(elapsed)
    print("## Setup\n")
    for key, v in setup.items():
        print(f"- {key}: {v}")
    print("- durability pairs: sluice log.flush=always RF3 vs RF1 (same cluster); sluice "
          "log.flush=never RF3 vs Kafka defaults (no fsync per write) RF3, acks=all, "
          "min.insync.replicas=2 on RF3 topics"
          + ("; Kafka log.flush.interval.messages=1 vs sluice flush=always" if args.kafka_flush_always else ""))

    def cell(key, f, fmt="{:.1f}"):
        s = summary(results.get(key, []), f)
        if not s:
            return "-"
        return (fmt.format(s["median"]) + " (" + fmt.format(s["min"]) + "-" + fmt.format(s["max"]) + ")")

    print("\n## Throughput and latency (median (min-max) of runs)\n")
    print("| config | workload | RF | MB/s | msg/s | produce p50 ms | produce p99 ms | e2e p50 ms | e2e p99 ms | runs ok | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    names = {"always": "sluice flush=always", "never": "sluice flush=never",
             "kafka": "Kafka default", "kafkaflush": "Kafka flush.interval.messages=1"}
    for key, runs in results.items():
        cfg, wl, rf = key.split("-")
        ok = [r for r in runs if "error" not in r]
        errs = sum((r.get("produce_errors") or 0) + (r.get("consume_errors") or 0) for r in ok)
        failed = [r["error"][:120] for r in runs if "error" in r]
        print(f"| {names[cfg]} | {wl}-1k | {rf[2:]} | {cell(key, 'mb_per_s')} | {cell(key, 'msgs_per_s', '{:.0f}')} "
              f"| {cell(key, 'produce_p50_ms', '{:.2f}')} | {cell(key, 'produce_p99_ms', '{:.2f}')} "
              f"| {cell(key, 'e2e_p50_ms', '{:.2f}')} | {cell(key, 'e2e_p99_ms', '{:.2f}')} "
              f"| {len(ok)}/{len(runs)} | {errs}{' ' + '; '.join(failed) if failed else ''} |")

    ratios = {}

    def ratio(name, a, b, field):
        sa, sb = summary(results.get(a, []), field), summary(results.get(b, []), field)
        if sa and sb and sb["median"]:
            ratios[f"{name} {field}"] = round(sa["median"] / sb["median"], 3)

    for field in ("mb_per_s", "produce_p50_ms", "produce_p99_ms", "e2e_p50_ms", "e2e_p99_ms"):
        ratio("RF3/RF1 (flush=always) tput-1k", "always-tput-rf3", "always-tput-rf1", field)
        ratio("RF3/RF1 (flush=always) lat-1k", "always-lat-rf3", "always-lat-rf1", field)
        ratio("sluice(never)/Kafka RF3 tput-1k", "never-tput-rf3", "kafka-tput-rf3", field)
        ratio("sluice(never)/Kafka RF3 lat-1k", "never-lat-rf3", "kafka-lat-rf3", field)
        ratio("sluice(always)/Kafka(flush every message) RF3 tput-1k", "always-tput-rf3",
              "kafkaflush-tput-rf3", field)
    print("\n## Ratios (of medians)\n")
    print("| ratio | value |")
    print("|---|---|")
    for k2, v in ratios.items():
        print(f"| {k2} | {v:.2f} |")

    print("\n## Partition failover: SIGKILL of the leader (RF 3, min.insync.replicas=2)\n")
    print("| cluster | trials | leader seen p50 / p99 (min-max) ms | acks=all produce ok p50 / p99 (min-max) ms | error |")
    print("|---|---|---|---|---|")
    for label, f in fail.items():
        def fcell(key):
            s = f.get(key)
            return "-" if not s else f"{s['p50']:.0f} / {s['p99']:.0f} ({s['min']:.0f}-{s['max']:.0f})"
        print(f"| {label} | {f['trials']} | {fcell('leader_seen_ms')} | {fcell('produce_ok_ms')} | {f['error'] or ''} |")

    print("\n## Broker log lines with ERROR/WARN/panic (first 8 per broker)\n")
    for label, hits in log_hits.items():
        for path, n, lines in hits:
            print(f"- {label} {Path(path).parent.name}: {n} lines")
            for ln in lines:
                print(f"    {ln[:400]}")
    for n in notes:
        print(f"\nNOTE: {n}")
    print(f"\nwall time {elapsed:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps({"setup": setup, "results": results, "ratios": ratios,
                                              "failover": fail, "notes": notes}, indent=2) + "\n")


if __name__ == "__main__":
    main()
