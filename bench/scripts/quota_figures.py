#!/usr/bin/env python3
"""A throttled and an unthrottled producer side by side (client quotas).

    python3 bench/scripts/quota_figures.py [--runs 3] [--duration 15]
        [--warmup 3] [--quota-mb 20] [--sluice target/release/sluice]
        [--out figures.json]

Run from the repository root with the release binary built and Kafka's
tools fetched (scripts/kafka-oracle fetch). Each run, for each of two
cases (no quota; a producer_byte_rate of --quota-mb MiB/s on client id
`noisy`, set with Kafka's own kafka-configs), starts one fresh
`sluice serve` (one shard, data under target/quota-figures-*/, removed at
the end) and runs two closed-loop producers at once, as fast as they can:

    sluice bench produce --workload tput-1k --partitions 1 --client-id noisy
    sluice bench produce --workload tput-1k --partitions 1 --client-id quiet

each on its own topic, for --duration s after --warmup s. Prints per-case
medians over the runs (each producer's MB/s, p50 and p99 produce latency)
and the ratios quota/no quota, as BENCHMARKING.md asks, plus the broker's
throttle counters; --out writes every run's figures as JSON. The broker is
stopped by pid at the end of each case, also on error or Ctrl-C.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compaction_figures import Broker, log  # noqa: E402

CONFIGS = "org.apache.kafka.tools.ConfigCommand"


def set_quota(bootstrap, client_id, rate):
    cmd = ["scripts/kafka-oracle", "tool", CONFIGS, "--bootstrap-server", bootstrap, "--alter",
           "--add-config", f"producer_byte_rate={rate}", "--entity-type", "clients", "--entity-name", client_id]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"kafka-configs: {p.stdout}{p.stderr}")


def one_case(args, run, quota, root):
    data = root / f"run{run}-{'quota' if quota else 'none'}"
    data.mkdir(parents=True)
    broker = Broker(args.sluice, data, True, 0)
    try:
        if quota:
            set_quota(broker.bootstrap(), "noisy", int(args.quota_mb * 2**20))
        procs = {}
        for client in ("noisy", "quiet"):
            out = data / f"{client}.json"
            cmd = [args.sluice, "bench", "produce", "--bootstrap", broker.bootstrap(), "--workload", "tput-1k",
                   "--partitions", "1", "--topic", f"{client}-topic", "--client-id", client,
                   "--duration", str(args.duration), "--warmup", str(args.warmup), "--cores", "0",
                   "--json", str(out)]
            procs[client] = (subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), out)
        res = {"run": run, "quota": quota}
        for client, (p, out) in procs.items():
            try:
                _, err = p.communicate(timeout=args.duration + args.warmup + 120)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            if p.returncode != 0 or not out.exists():
                raise RuntimeError(f"bench produce {client}: exit {p.returncode}: {err[-800:]}")
            prod = json.loads(out.read_text()).get("produce") or {}
            lat = prod.get("latency_us") or {}
            res[f"{client}_mb_per_s"] = prod.get("mb_per_s") or 0
            res[f"{client}_p50_ms"] = lat.get("p50", 0) / 1000
            res[f"{client}_p99_ms"] = lat.get("p99", 0) / 1000
            res[f"{client}_errors"] = prod.get("errors") or 0
        res["throttled_requests"] = broker.metric("sluice_kafka_throttled_requests_total")
        if broker.proc.poll() is not None:
            raise RuntimeError("the broker exited during the run")
        return res
    finally:
        broker.stop()
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--quota-mb", type=float, default=20)
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--out")
    args = ap.parse_args()
    root = Path(f"target/quota-figures-{os.getpid()}")
    results = []
    try:
        for run in range(args.runs):
            # Alternate the order so drift does not favour one case.
            for quota in ([False, True] if run % 2 == 0 else [True, False]):
                res = one_case(args, run, quota, root)
                log(f"  {res}")
                results.append(res)
                time.sleep(1)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    keys = [k for k in results[0] if k not in ("run", "quota")]
    med = {c: {k: statistics.median(r[k] for r in results if r["quota"] == c) for k in keys} for c in (False, True)}
    print(f"medians of {args.runs} runs: two tput-1k producers side by side, "
          f"producer_byte_rate {args.quota_mb} MiB/s on `noisy` in the quota case")
    print(f"{'':22} {'no quota':>12} {'quota':>12} {'quota/none':>10}")
    for k in keys:
        none, on = med[False][k], med[True][k]
        ratio = f"{on / none:.2f}" if none else "-"
        print(f"{k:22} {none:12.2f} {on:12.2f} {ratio:>10}")
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results, "medians": {
            "none": med[False], "quota": med[True]}}, indent=2))


if __name__ == "__main__":
    main()
