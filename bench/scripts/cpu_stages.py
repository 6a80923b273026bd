#!/usr/bin/env python3
"""bench/scripts/cpu_stages.py: a broker's CPU profile grouped by stage.

    perf record -F 999 -p <broker pid> -o perf.data -- sleep 8
    python3 bench/scripts/cpu_stages.py perf.data [--ms-per-mb X]

Reads `perf report --no-children --sort dso,sym` of the profile and sums
each symbol's share into the stage its name belongs to (the first pattern
that matches, in the order below), so the table in bench/README.md ("Where
the CPU goes") can be made again from a new profile. With --ms-per-mb (the
broker's whole CPU time per MB, measured by ab.sh in the same session),
prints each stage's part of it too. Prints a Markdown table, largest first.
"""

import argparse
import re
import subprocess
import sys

# (stage, regular expression on "dso symbol"), first match wins.
STAGES = [
    ("socket send: the kernel's copy out of the response parts", r"\b_copy_from_iter\b"),
    ("socket receive: the kernel's copy into the request frame", r"\b_copy_to_iter\b"),
    (
        "interrupts, softirqs, lock releases with interrupts, context switches",
        r"_raw_spin_unlock_irq|handle_softirqs|__do_softirq|finish_task_switch|"
        r"irqentry_exit|__irq_exit|sysvec_|common_interrupt|schedule\b|__schedule",
    ),
    ("user-space copy (memmove/memcpy)", r"__mem(move|cpy)"),
    ("CRC-32C", r"crc32c"),
    ("clock reads", r"clock_gettime|read_tsc|Timespec>::now|Instant>::now"),
    ("allocator", r"\b(_int_malloc|_int_free|malloc|cfree|free|realloc|_int_realloc|malloc_consolidate|unlink_chunk)\b"),
    (
        "block I/O submission (io_uring, bio, ext4)",
        r"\b(blk_|bio_|__blk|ext4_|iowrite|io_uring|io_submit|io_issue|io_read|io_write|virtblk|iomap_)",
    ),
    (
        "the rest of the kernel's TCP/IP path",
        r"\b(tcp_|__tcp|ip_|__ip|skb_|__skb|kfree_skb|sock_|__sock|sk_|__sk|loopback|net_|__netif|"
        r"__dev_queue|dev_hard|__inet|inet_|__napi|napi_|release_sock|lock_sock|__release_sock|"
        r"page_frag|skb_page|__alloc_skb|__kfree_skb|validate_xmit|nf_hook|__copy_skb)",
    ),
    ("the rest of the kernel (syscalls, pages, scheduler)", r"\[kernel"),
    ("sluice and its crates: decode, dispatch, log bookkeeping, the executor", r"."),
]


def shares(perf_data):
    out = subprocess.run(
        [
            "perf", "report", "-i", perf_data, "--no-children", "--sort", "dso,sym",
            "-g", "none", "--percent-limit", "0", "--stdio",
        ],
        capture_output=True, text=True, check=True,
    ).stdout
    row = re.compile(r"^\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*?)\s*$")
    for line in out.splitlines():
        m = row.match(line)
        if m:
            yield float(m.group(1)), f"{m.group(2)} {m.group(3)}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("perf_data")
    ap.add_argument("--ms-per-mb", type=float)
    args = ap.parse_args()
    totals = {stage: 0.0 for stage, _ in STAGES}
    compiled = [(stage, re.compile(p)) for stage, p in STAGES]
    for share, name in shares(args.perf_data):
        for stage, pattern in compiled:
            if pattern.search(name):
                totals[stage] += share
                break
    whole = sum(totals.values())
    if whole == 0:
        sys.exit("no samples in the profile")
    if args.ms_per_mb:
        print("| stage | share | CPU per MB |\n| --- | ---: | ---: |")
    else:
        print("| stage | share |\n| --- | ---: |")
    for stage, share in sorted(totals.items(), key=lambda kv: -kv[1]):
        part = share / whole
        cells = [stage, f"{100 * part:.1f}%"]
        if args.ms_per_mb:
            cells.append(f"{part * args.ms_per_mb:.3f} ms")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
