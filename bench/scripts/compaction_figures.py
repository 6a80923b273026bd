#!/usr/bin/env python3
"""Produce and end-to-end latency with and without the log cleaner at work.

    python3 bench/scripts/compaction_figures.py [--runs 3] [--preload-mb 512]
        [--keys 20000] [--duration 30] [--warmup 5] [--rate 20000]
        [--cleaner-io BYTES_PER_S]
        [--sluice target/release/sluice] [--out figures.json]

Run from the repository root with the release binary built. Each run, for
each of two cases (the cleaner off: log.cleaner.enable=false; on: its
defaults), starts one fresh `sluice serve` (one shard, data under
target/compaction-figures-*/, removed at the end) and:

1. creates topic `compacted` (1 partition, cleanup.policy=delete for
   now, segment.bytes 64 MiB, min.cleanable.dirty.ratio 0.01) and preloads
   it with --preload-mb MiB of 1 KiB values over --keys keys (`sluice bench
   produce --keys` at 100,000 msg/s), so about (preload - keys x 1 KiB) is
   garbage to remove;
2. runs `sluice bench e2e --workload lat-1k --rate R` on a second, ordinary
   topic for --duration s after --warmup s: produce (send -> ack) and
   end-to-end (send -> consumed) latency on the same core the cleaner runs
   on. As the counted window starts, the compacted topic's cleanup.policy
   is set to compact (IncrementalAlterConfigs, acting at once), so with
   the cleaner on it compacts the preload during the window;
3. reads /metrics: the cleaner's passes and bytes removed (0 when off), and
   checks the broker is still running.

Prints per-case medians over the runs (p50, p99, p99.9, max of produce and
e2e latency) and the ratios on/off, as BENCHMARKING.md asks; --out writes
every run's figures as JSON. The broker is stopped by pid (SIGTERM, SIGKILL
after 10 s) at the end of each case, also on error or Ctrl-C.
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
import urllib.request
from pathlib import Path


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, sluice, data, cleaner, cleaner_io):
        self.kafka, self.admin = free_port(), free_port()
        env = dict(os.environ,
                   SLUICE_LOG__CLEANER_ENABLE="true" if cleaner else "false",
                   SLUICE_LOG__CLEANER_BACKOFF_MS="1000")
        if cleaner_io:
            env["SLUICE_LOG__CLEANER_IO_MAX_BYTES_PER_SECOND"] = str(cleaner_io)
        self.logfile = open(data / "broker.log", "w")
        self.proc = subprocess.Popen(
            [sluice, "serve", "--data-dir", str(data), "--cores", "1",
             "--kafka-addr", f"127.0.0.1:{self.kafka}", "--admin-addr", f"127.0.0.1:{self.admin}"],
            env=env, stdout=self.logfile, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.kafka), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("broker did not start; see broker.log")
                time.sleep(0.1)

    def bootstrap(self):
        return f"127.0.0.1:{self.kafka}"

    def metric(self, name):
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=10).read().decode()
        return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logfile.close()


def create_compacted(bootstrap):
    """Created with cleanup.policy=delete, so nothing is cleaned while it
    is preloaded; compact() turns compaction on when the measurement starts."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"cleanup.policy": "delete", "segment.bytes": str(64 << 20),
               "min.cleanable.dirty.ratio": "0.01"}
    admin.create_topics([NewTopic("compacted", 1, 1, config=configs)], request_timeout=30)["compacted"].result(30)


def compact(bootstrap):
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
    admin = AdminClient({"bootstrap.servers": bootstrap})
    entry = ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource("TOPIC", "compacted", incremental_configs=[entry])
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(30)


def bench(sluice, args, extra, json_out, timeout):
    cmd = [sluice, "bench"] + extra + ["--json", str(json_out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0 or not json_out.exists():
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr[-800:]}")
    return json.loads(json_out.read_text())


def one_case(args, run, cleaner, root):
    data = root / f"run{run}-{'on' if cleaner else 'off'}"
    data.mkdir(parents=True)
    broker = Broker(args.sluice, data, cleaner, args.cleaner_io)
    try:
        create_compacted(broker.bootstrap())
        messages = args.preload_mb * 1024
        # At a fixed rate, so every case preloads the same amount.
        preload_rate = 100_000
        seconds = max(1.0, messages / preload_rate)
        bench(args.sluice, args, ["produce", "--bootstrap", broker.bootstrap(), "--topic", "compacted",
                                  "--keys", str(args.keys), "--value-size", "1024", "--partitions", "1",
                                  "--rate", str(preload_rate), "--duration", f"{seconds:.1f}", "--warmup", "0",
                                  "--keep-topic"],
              data / "preload.json", seconds + 120)
        log(f"  run {run} cleaner {'on' if cleaner else 'off'}: preloaded {messages} messages")
        passes0, removed0 = broker.metric("sluice_log_cleaner_passes_total"), broker.metric("sluice_log_cleaner_bytes_removed_total")
        out = data / "e2e.json"
        cmd = [args.sluice, "bench", "e2e", "--bootstrap", broker.bootstrap(), "--workload", "lat-1k",
               "--topic", "latency", "--rate", str(args.rate), "--duration", str(args.duration),
               "--warmup", str(args.warmup), "--json", str(out)]
        load = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            # Compaction starts as the counted window does (in both cases
            # the same config change; with the cleaner off nothing follows).
            time.sleep(args.warmup)
            compact(broker.bootstrap())
            _, err = load.communicate(timeout=args.duration + 120)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
        if load.returncode != 0 or not out.exists():
            raise RuntimeError(f"bench e2e: exit {load.returncode}: {err[-800:]}")
        r = json.loads(out.read_text())
        passes = broker.metric("sluice_log_cleaner_passes_total") - passes0
        removed = broker.metric("sluice_log_cleaner_bytes_removed_total") - removed0
        if broker.proc.poll() is not None:
            raise RuntimeError("the broker exited during the run")
        prod, cons = r.get("produce") or {}, r.get("consume") or {}
        pl, cl = prod.get("latency_us") or {}, cons.get("latency_us") or {}
        ms = lambda d, k: d.get(k, 0) / 1000
        return {"run": run, "cleaner": cleaner, "cleaner_passes": passes, "cleaner_mb_removed": removed / 2**20,
                "msgs_per_s": prod.get("msgs_per_s"), "errors": (prod.get("errors") or 0) + (cons.get("errors") or 0),
                "produce_p50_ms": ms(pl, "p50"), "produce_p99_ms": ms(pl, "p99"),
                "produce_p99_9_ms": ms(pl, "p99_9"), "produce_max_ms": ms(pl, "max"),
                "e2e_p50_ms": ms(cl, "p50"), "e2e_p99_ms": ms(cl, "p99"),
                "e2e_p99_9_ms": ms(cl, "p99_9"), "e2e_max_ms": ms(cl, "max")}
    finally:
        broker.stop()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--preload-mb", type=int, default=512)
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--duration", type=float, default=30)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--cleaner-io", type=float, default=0,
                    help="log.cleaner.io.max.bytes.per.second (default: sluice's)")
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--out")
    args = ap.parse_args()
    root = Path(f"target/compaction-figures-{os.getpid()}")
    results = []
    try:
        for run in range(args.runs):
            # Alternate the order so drift does not favour one case.
            for cleaner in ([False, True] if run % 2 == 0 else [True, False]):
                res = one_case(args, run, cleaner, root)
                log(f"  {res}")
                results.append(res)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    keys = ["produce_p50_ms", "produce_p99_ms", "produce_p99_9_ms", "produce_max_ms",
            "e2e_p50_ms", "e2e_p99_ms", "e2e_p99_9_ms", "e2e_max_ms", "cleaner_passes", "cleaner_mb_removed",
            "msgs_per_s", "errors"]
    med = {c: {k: statistics.median(r[k] for r in results if r["cleaner"] == c) for k in keys} for c in (False, True)}
    print(f"medians of {args.runs} runs, lat-1k at {args.rate} msg/s beside a {args.preload_mb} MiB compacted topic")
    print(f"{'':20} {'cleaner off':>12} {'cleaner on':>12} {'on/off':>8}")
    for k in keys:
        off, on = med[False][k], med[True][k]
        ratio = f"{on / off:.2f}" if off else "-"
        print(f"{k:20} {off:12.2f} {on:12.2f} {ratio:>8}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results, "medians": {
            "off": med[False], "on": med[True]}}, indent=2))


if __name__ == "__main__":
    main()
