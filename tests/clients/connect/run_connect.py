#!/usr/bin/env python3
"""Kafka Connect end to end through one broker (Kafka or sluice).

A distributed Connect worker (scripts/kafka-oracle connect-start: Kafka's
connect-runtime, its internal config/offset/status topics compacted) runs a
FileStreamSource connector (WORK/in.txt -> topic connect-lines) and a
FileStreamSink connector (connect-lines -> WORK/out.txt):

  1. N lines written to in.txt arrive in out.txt, and the connectors'
     offsets (GET /connectors/NAME/offsets) cover them: the source's file
     position is in.txt's size, the sink group's committed offset N;
  2. the worker is stopped (TERM, a clean shutdown), N more lines are
     appended, the worker is started again: the source resumes from its
     stored offset and the sink from its committed offset (a worker stopped
     before the sink's commit writes the uncommitted lines again: Kafka's
     FileStreamSink is at-least-once, so the run waits for the commit);
  3. N/2 more lines (copied and committed), the broker restart command
     (--broker-restart-cmd, run with sh -c; skipped when not given), N/2
     more lines: the worker reconnects, rejoins its group, its tasks go on
     from their stored offsets. Lines in flight while the broker goes down
     may be copied twice (the worker revokes its tasks when the coordinator
     is unreachable for 3 s, and a stopped task whose last commit failed
     resumes from the one before; seen with Kafka), so the restart comes
     once everything is committed, and exactly once holds as after a clean
     worker restart;
  4. the three internal topics exist with cleanup.policy=compact, and the
     topic connect-lines holds every line exactly once, in order.

After each phase out.txt must hold exactly the lines written so far, each
once, in order (one partition); a duplicate or a foreign line fails at once.
Each wait is bounded (--wait seconds, and --timeout for the whole run).

Usage (the broker already runs, fresh: the topics connect-lines,
connect-configs, connect-offsets, connect-status and the groups connect-e2e
and connect-connect-e2e-sink must not exist yet; WORK is created, its old
in.txt and out.txt removed):
  tests/clients/connect/run_connect.py --bootstrap 127.0.0.1:9092 --work DIR \
      [--broker-restart-cmd 'CMD'] [--lines 200] [--wait 90] [--timeout 600]
      [--oracle scripts/kafka-oracle]

Prints progress lines "run_connect: ..." on stdout, the last "run_connect:
PASS ..." on success, and exits 0; on a failure it prints "run_connect: FAIL
<why>" and the worker's last warnings and errors (WORK/logs/connect.log) on
stderr and exits 1 (2 for bad arguments). The worker is stopped (by the pid
in WORK/connect.pid) on every path, SIGTERM and SIGINT included; a caller
that SIGKILLs this script should run
`scripts/kafka-oracle connect-stop --data WORK` itself.
Python 3 standard library only.
"""
import argparse
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
SOURCE = "connect-e2e-source"
SINK = "connect-e2e-sink"
INTERNAL = {
    "config": "connect-configs",
    "offset": "connect-offsets",
    "status": "connect-status",
}
TOOL_TIMEOUT = 120


class Fail(Exception):
    pass


def say(msg):
    print(f"run_connect: {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Run:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        self.oracle = os.path.abspath(args.oracle)
        self.start_time = time.monotonic()
        self.end = self.start_time + args.timeout
        self.port = free_port()
        self.rest = f"http://127.0.0.1:{self.port}"
        self.in_path = os.path.join(self.work, "in.txt")
        self.out_path = os.path.join(self.work, "out.txt")
        self.config_path = os.path.join(self.work, "worker.properties")
        self.written = []  # every line appended to in.txt, in order
        self.worker_pid = None
        self.worker_started = False  # connect-start was run, connect-stop not yet

    # --- time -------------------------------------------------------------

    def left(self):
        return self.end - time.monotonic()

    def deadline(self, seconds=None):
        """A deadline of --wait (or seconds) from now, within --timeout."""
        seconds = self.args.wait if seconds is None else seconds
        return time.monotonic() + max(0.0, min(seconds, self.left()))

    def elapsed(self):
        return f"{time.monotonic() - self.start_time:.1f}s"

    # --- processes ----------------------------------------------------------

    def oracle_cmd(self, args, timeout, env=None):
        timeout = max(1.0, min(timeout, self.left() + 30))
        try:
            return subprocess.run(
                [self.oracle] + args,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise Fail(f"kafka-oracle {args[0]} did not finish within {timeout:.0f}s")

    def start_worker(self):
        t = time.monotonic()
        # connect-start gives up (and stops the worker) within the time left.
        env = dict(os.environ)
        env["KAFKA_ORACLE_START_TIMEOUT"] = str(int(max(5, min(90, self.left()))))
        self.worker_started = True
        p = self.oracle_cmd(["connect-start", "--data", self.work, "--config", self.config_path],
                            180, env=env)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            raise Fail(f"connect-start exited {p.returncode}")
        self.worker_pid = int(p.stdout.strip().splitlines()[-1])
        say(f"worker started, pid {self.worker_pid}, REST {self.rest} ({time.monotonic() - t:.1f}s)")
        self.wait_rest()

    def stop_worker(self):
        """Stops the worker of WORK/connect.pid (also one whose connect-start
        did not finish), KILL by pid when connect-stop fails."""
        if not self.worker_started:
            return
        self.worker_started = False
        t = time.monotonic()
        try:
            p = subprocess.run(
                [self.oracle, "connect-stop", "--data", self.work],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
            )
            ok = p.returncode == 0
            if not ok:
                sys.stderr.write(p.stderr)
        except subprocess.TimeoutExpired:
            ok = False
        pid = self.worker_pid
        if pid is None:
            try:
                with open(os.path.join(self.work, "connect.pid")) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                pass
        if not ok and pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if pid is None:
            say("no worker left to stop")
        else:
            say(f"worker pid {pid} stopped ({time.monotonic() - t:.1f}s)")
        self.worker_pid = None

    def restart_broker(self):
        cmd = self.args.broker_restart_cmd
        say(f"restarting the broker: {cmd}")
        t = time.monotonic()
        timeout = max(1.0, min(240, self.left()))
        try:
            p = subprocess.run(["sh", "-c", cmd], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Fail(f"the broker restart command did not finish within {timeout:.0f}s")
        if p.returncode != 0:
            sys.stderr.write(p.stdout + p.stderr)
            raise Fail(f"the broker restart command exited {p.returncode}")
        say(f"broker restarted ({time.monotonic() - t:.1f}s)")

    def tool(self, cls, *args):
        p = self.oracle_cmd(["tool", cls, "--bootstrap-server", self.args.bootstrap] + list(args),
                            TOOL_TIMEOUT)
        if p.returncode != 0:
            sys.stderr.write(p.stderr)
            raise Fail(f"{cls} exited {p.returncode}")
        return p.stdout

    # --- REST -----------------------------------------------------------------

    def http(self, method, path, body=None, timeout=15):
        """(status, decoded JSON or text); status 0 when nothing answers."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.rest + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            return 0, str(e)
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def wait_rest(self):
        end = self.deadline()
        while True:
            status, body = self.http("GET", "/")
            if status == 200:
                say(f"REST answers: Connect {body.get('version')} cluster {body.get('kafka_cluster_id')}")
                return
            self.check_worker_alive()
            if time.monotonic() >= end:
                raise Fail(f"the worker's REST API did not answer at {self.rest}: {status} {body}")
            time.sleep(0.5)

    def check_worker_alive(self):
        if self.worker_pid is not None and not os.path.exists(f"/proc/{self.worker_pid}"):
            raise Fail(f"the worker (pid {self.worker_pid}) exited")

    def put_connector(self, name, config):
        end = self.deadline()
        while True:
            status, body = self.http("PUT", f"/connectors/{name}/config", config, timeout=90)
            if status in (200, 201):
                say(f"connector {name} {'created' if status == 201 else 'updated'}")
                return
            self.check_worker_alive()
            if time.monotonic() >= end:
                raise Fail(f"creating connector {name}: HTTP {status} {body}")
            # 409 (rebalancing, stale config), 503 (starting), 500 (timeout): again
            time.sleep(1)

    def wait_running(self, names):
        end = self.deadline()
        while True:
            states = {}
            for name in names:
                status, body = self.http("GET", f"/connectors/{name}/status")
                if status != 200:
                    states[name] = f"HTTP {status} {body}"
                    continue
                tasks = body.get("tasks") or []
                for t in tasks:
                    if t.get("state") == "FAILED":
                        raise Fail(f"{name} task {t.get('id')} FAILED: {t.get('trace', '')[:3000]}")
                if body.get("connector", {}).get("state") == "FAILED":
                    raise Fail(f"{name} FAILED: {body['connector'].get('trace', '')[:3000]}")
                ok = body.get("connector", {}).get("state") == "RUNNING" and tasks \
                    and all(t.get("state") == "RUNNING" for t in tasks)
                states[name] = "RUNNING" if ok else json.dumps(body)
            if all(s == "RUNNING" for s in states.values()):
                say(f"RUNNING: {', '.join(names)}")
                return
            self.check_worker_alive()
            if time.monotonic() >= end:
                raise Fail(f"connectors not RUNNING: {states}")
            time.sleep(0.5)

    def wait_source_topic(self):
        """Until the source connector reports the data topic as active (KIP-558):
        the topic exists then, before the sink subscribes to it."""
        end = self.deadline()
        while True:
            status, body = self.http("GET", f"/connectors/{SOURCE}/topics")
            if status == 200 and self.args.topic in (body.get(SOURCE) or {}).get("topics", []):
                say(f"source produced to {self.args.topic}")
                return
            self.check_worker_alive()
            if time.monotonic() >= end:
                raise Fail(f"the source connector never produced to {self.args.topic}: HTTP {status} {body}")
            time.sleep(0.5)

    def offsets(self, name):
        status, body = self.http("GET", f"/connectors/{name}/offsets")
        if status != 200:
            return None, f"HTTP {status} {body}"
        return body.get("offsets") or [], ""

    def wait_committed(self):
        """Until the stored offsets (KIP-875: GET /connectors/NAME/offsets) cover
        everything written: the source's file position is in.txt's size, the
        sink group's committed offset the number of lines. A worker stopped
        before that delivers the uncommitted tail again (Kafka's sink is
        at-least-once), so a clean restart is checked from this point."""
        end = self.deadline()
        t = time.monotonic()
        size = os.path.getsize(self.in_path)
        want = len(self.written)
        while True:
            src, why_src = self.offsets(SOURCE)
            snk, why_snk = self.offsets(SINK)
            pos = [o.get("offset", {}).get("position") for o in (src or [])]
            off = [o.get("offset", {}).get("kafka_offset") for o in (snk or [])
                   if o.get("partition", {}).get("kafka_topic") == self.args.topic]
            if pos == [size] and off == [want]:
                say(f"offsets stored: source position {size}, sink offset {want}"
                    f" ({time.monotonic() - t:.1f}s)")
                return
            if off and off[0] is not None and off[0] > want:
                raise Fail(f"the sink committed offset {off[0]} for {want} lines:"
                           f" the topic holds duplicates")
            self.check_worker_alive()
            if time.monotonic() >= end:
                raise Fail(f"offsets not stored within {self.args.wait}s: source {src or why_src}"
                           f" (want position {size}), sink {snk or why_snk} (want {want})")
            time.sleep(0.5)

    # --- files ----------------------------------------------------------------

    def append(self, phase, count):
        # ASCII only: FileStreamSourceTask stores its position in characters
        # but skips that many bytes on a restart, so with multi-byte UTF-8 it
        # resumes in the wrong place (seen with Kafka's own connector).
        lines = [f"{phase} line {i:05d} {'x' * (i % 37)}" for i in range(count)]
        with open(self.in_path, "a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        self.written.extend(lines)
        say(f"appended {count} lines ({phase}) to in.txt: {len(self.written)} in all")

    def out_lines(self):
        try:
            with open(self.out_path, "r", encoding="utf-8", newline="\n") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        # Only complete lines: the sink may be in the middle of one.
        return text.split("\n")[:-1]

    def check_lines(self, got, want, what):
        """'' when got == want; raises on a line that can never go away."""
        have = collections.Counter(got)
        expected = set(want)
        dups = [line for line, n in have.items() if n > 1]
        if dups:
            raise Fail(f"{what}: {len(dups)} lines more than once, e.g. {dups[:3]!r}"
                       f" ({len(got)} lines, {len(want)} expected)")
        foreign = [line for line in have if line not in expected]
        if foreign:
            raise Fail(f"{what}: {len(foreign)} lines never written, e.g. {foreign[:3]!r}")
        if len(got) < len(want):
            return f"{len(got)} of {len(want)} lines"
        if got != want:
            first = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
            raise Fail(f"{what}: all lines there but out of order from line {first}:"
                       f" {got[first]!r} instead of {want[first]!r}")
        return ""

    def wait_out(self, what):
        end = self.deadline()
        t = time.monotonic()
        while True:
            missing = self.check_lines(self.out_lines(), self.written, f"out.txt {what}")
            if not missing:
                say(f"out.txt holds all {len(self.written)} lines, each once, in order"
                    f" ({what}, {time.monotonic() - t:.1f}s)")
                return
            self.check_worker_alive()
            if time.monotonic() >= end:
                raise Fail(f"out.txt {what}: only {missing} after {self.args.wait}s")
            time.sleep(0.25)

    # --- the broker's view ------------------------------------------------------

    def check_internal_topics(self):
        names = "|".join(re.escape(t) for t in INTERNAL.values())
        out = self.tool("org.apache.kafka.tools.TopicCommand", "--describe", "--topic", f"({names})")
        seen = {}
        for line in out.splitlines():
            m = re.match(r"\s*Topic:\s*(\S+)\s.*PartitionCount:\s*(\d+).*?Configs:\s*(\S*)", line)
            if m:
                configs = dict(kv.split("=", 1) for kv in m.group(3).split(",") if "=" in kv)
                seen[m.group(1)] = (int(m.group(2)), configs)
        for topic in INTERNAL.values():
            if topic not in seen:
                raise Fail(f"internal topic {topic} not described by kafka-topics:\n{out}")
            parts, configs = seen[topic]
            if configs.get("cleanup.policy") != "compact":
                raise Fail(f"internal topic {topic}: cleanup.policy {configs.get('cleanup.policy')!r},"
                           f" not compact:\n{out}")
            say(f"internal topic {topic}: {parts} partitions, cleanup.policy=compact")

    def check_topic(self):
        out = self.tool(
            "org.apache.kafka.tools.consumer.ConsoleConsumer",
            "--topic", self.args.topic, "--partition", "0", "--offset", "earliest",
            "--timeout-ms", "8000",
        )
        got = out.split("\n")[:-1] if out else []
        missing = self.check_lines(got, self.written, f"topic {self.args.topic}")
        if missing:
            raise Fail(f"topic {self.args.topic}: only {missing}")
        say(f"topic {self.args.topic} holds all {len(got)} lines, each once, in order")

    # --- the run ------------------------------------------------------------------

    def write_config(self):
        a = self.args
        config = {
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "config.storage.topic": INTERNAL["config"],
            "offset.storage.topic": INTERNAL["offset"],
            "status.storage.topic": INTERNAL["status"],
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.flush.interval.ms": "1000",
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.port),
            # A worker that rejoins gets its tasks back at once, not after 5 min.
            "scheduled.rebalance.max.delay.ms": "0",
            # The FileStream connectors are on the classpath, with service files.
            "plugin.discovery": "service_load",
            "task.shutdown.graceful.timeout.ms": "10000",
            # A sink task restarted after a broker restart rejoins its group
            # within this, not the default 45 s (its old member could not
            # leave while the broker was down).
            "consumer.session.timeout.ms": "10000",
        }
        with open(self.config_path, "w") as f:
            f.write("# Written by tests/clients/connect/run_connect.py\n")
            for k, v in config.items():
                f.write(f"{k}={v}\n")

    def run(self):
        a = self.args
        os.makedirs(self.work, exist_ok=True)
        for path in (self.in_path, self.out_path):
            if os.path.exists(path):
                os.remove(path)
        open(self.in_path, "w").close()
        self.write_config()
        say(f"work dir {self.work}, broker {a.bootstrap}, {a.lines} lines a phase")

        self.start_worker()
        self.put_connector(SOURCE, {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1",
            "file": self.in_path,
            "topic": a.topic,
            # Connect creates the topic itself (KIP-158), one partition.
            "topic.creation.default.replication.factor": "1",
            "topic.creation.default.partitions": "1",
        })
        self.append("first", a.lines)
        self.wait_source_topic()
        self.put_connector(SINK, {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1",
            "file": self.out_path,
            "topics": a.topic,
        })
        self.wait_running([SOURCE, SINK])
        self.wait_out("phase 1")
        self.wait_committed()

        say("phase 2: worker restart")
        self.stop_worker()
        self.append("second", a.lines)
        self.start_worker()
        self.wait_running([SOURCE, SINK])
        self.wait_out("phase 2, after the worker restart")
        self.wait_committed()

        if a.broker_restart_cmd:
            say("phase 3: broker restart")
            half = a.lines // 2
            self.append("third-before", half)
            self.wait_out("phase 3, before the broker restart")
            self.wait_committed()
            self.restart_broker()
            self.append("third-after", a.lines - half)
            self.wait_out("phase 3, after the broker restart")
            self.wait_running([SOURCE, SINK])
            self.wait_committed()
        else:
            say("phase 3 skipped: no --broker-restart-cmd")

        self.check_internal_topics()
        self.check_topic()
        say(f"PASS: {len(self.written)} lines copied through {a.bootstrap} in {self.elapsed()}")

    def dump_log(self):
        log = os.path.join(self.work, "logs", "connect.log")
        try:
            with open(log, encoding="utf-8", errors="replace") as f:
                lines = f.readlines()
        except OSError:
            return
        bad = [line for line in lines if line.startswith("[") and (" WARN " in line or " ERROR " in line)]
        sys.stderr.write(f"run_connect: last warnings and errors of {log}"
                         f" ({len(bad)} of {len(lines)} lines):\n")
        sys.stderr.writelines(bad[-40:])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", required=True, help="HOST:PORT of the broker")
    p.add_argument("--work", required=True, help="a directory for the files and the worker")
    p.add_argument("--broker-restart-cmd", default="",
                   help="a shell command that restarts the broker and returns once it answers")
    p.add_argument("--lines", type=int, default=200, help="lines a phase (default 200)")
    p.add_argument("--wait", type=float, default=90, help="seconds for one wait (default 90)")
    p.add_argument("--timeout", type=float, default=600, help="seconds for the whole run (default 600)")
    p.add_argument("--topic", default="connect-lines")
    p.add_argument("--group", default="connect-e2e", help="the worker's group.id")
    p.add_argument("--oracle", default=os.path.join(ROOT, "scripts", "kafka-oracle"))
    args = p.parse_args()
    if args.lines < 2:
        p.error("--lines must be 2 or more")

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    run = Run(args)
    code = 1
    try:
        run.run()
        code = 0
    except Fail as e:
        say(f"FAIL after {run.elapsed()}: {e}")
        run.dump_log()
    except SystemExit as e:
        say(f"stopped by a signal after {run.elapsed()}")
        code = e.code
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        run.stop_worker()
    sys.exit(code)


if __name__ == "__main__":
    main()
