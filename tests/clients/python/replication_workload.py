#!/usr/bin/env python3
"""A Jepsen-style produce/consume workload and checker for a replicated topic.

Usage: python3 replication_workload.py --bootstrap HOST:PORT[,HOST:PORT...]
           --topic NAME --partitions N --seconds S
           [--producers K (default 2)] [--status-file PATH]

A Rust integration test creates TOPIC (N partitions), runs this script and
injects faults into the brokers (SIGKILL, SIGSTOP, restarts) while it runs.

1. K producer threads (confluent-kafka, acks=all, enable.idempotence=true)
   send the unique values b"p{j}-{n}" (producer j, n = 0, 1, ...) to
   partition n % N for S seconds, at a bounded rate (1 ms of sleep every 20
   messages, at most 2000 unacknowledged per producer), then flush for up
   to 120 s. Delivery reports record each acknowledged value with the
   partition and offset the acknowledgement named, and each error.
2. Meanwhile one live consumer, assigned every partition from offset 0,
   records each (partition, offset, value) it reads, until the producers
   have flushed.
3. Then a final drain: a fresh consumer reads every partition from offset 0
   up to its high watermark (for at most 90 s).
4. The checker compares, and the last line on stdout is
   `RESULT {json}` with these keys:
     acknowledged           values the broker acknowledged
     read                   distinct values in the final drain
     lost                   acknowledged values missing from the drain (0)
     duplicated             values at more than one offset of the drain (0)
     vanished               records the live consumer read whose (partition,
                            offset) holds another value, or none, in the
                            drain (0)
     offset_mismatch        acknowledged values the drain found elsewhere
                            than the acknowledgement said (0)
     offsets_non_monotonic  times the live consumer read an offset not above
                            the previous one it read in that partition (0)
     errors                 delivery errors (timeouts under faults are
                            allowed: an errored value may or may not be there)
     unacknowledged         values neither acknowledged nor failed after the
                            flush
     lost_sample, duplicated_sample, vanished_sample, error_sample
                            up to 5 strings each
   and, besides: sent, live_read, acked_without_offset (acknowledgements
   without an offset, left out of offset_mismatch), foreign (drained values
   no producer of this run sent), offset_mismatch_sample,
   non_monotonic_sample, drain_complete (false: the drain did not reach
   every high watermark in time), high_watermarks, internal_errors
   (exceptions in this script's threads; should be empty) and timed_out.

With --foreign-out PATH, every drained record no producer of this run
sent is written to PATH as a JSON line [partition, offset, value] (value
as text), so another client's producer writing to the same topic (the
test's Java producer) can be checked against the same drain.

With --status-file, the line "producing" is written to PATH (truncating it)
when producing starts and "done" is appended when it stops, so the test can
time its faults. Progress goes to stderr.

Everything is bounded: a watchdog prints the RESULT line with what has been
gathered so far and "timed_out": true, and exits 2, S + 225 s after the
start. Otherwise the script exits 0 whatever the checker found (the test
asserts on the JSON); 1 if the script itself failed (internal_errors).
"""
import argparse
import json
import os
import sys
import threading
import time
import traceback
import uuid
from array import array

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

MAX_IN_FLIGHT = 2000  # unacknowledged messages per producer
BURST = 20  # messages between 1 ms sleeps
FLUSH_SECONDS = 120.0
DRAIN_SECONDS = 90.0
DRAIN_CAP = 215.0  # the drain ends at most S + DRAIN_CAP s after the start
WATCHDOG = 225.0  # the watchdog fires S + WATCHDOG s after the start
CLOSE_SECONDS = 5.0  # the longest a consumer's close() may block us
PROGRESS_SECONDS = 5.0
SAMPLE = 5

# Values are kept as integers in arrays so that a long run at full rate stays
# small in memory: b"p{j}-{n}" is the id (j << 40) | n, any other value a
# negative id (see State.value_id); a location (partition, offset) is
# (partition << 40) | offset.
SHIFT = 40
LOW = (1 << SHIFT) - 1
MISSING = -(1 << 62)  # no record at this offset (drain), not found (checker)
UNACKED = -1  # a producer's value: neither acknowledged nor failed yet
ERRORED = -2  # its delivery failed
ACKED_NO_OFFSET = -3  # acknowledged without an offset
PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def pack(partition, offset):
    return (partition << SHIFT) | offset


def show_location(loc):
    return f"{loc >> SHIFT}@{loc & LOW}"


def now():
    return time.monotonic()


class RateLimitedLog:
    """Logs a client's error at most once per 5 s, with how many were
    skipped."""

    def __init__(self, who):
        self.who = who
        self.last = 0.0
        self.skipped = 0

    def __call__(self, what):
        t = now()
        if t - self.last < 5.0:
            self.skipped += 1
            return
        more = f" (+{self.skipped} more)" if self.skipped else ""
        log(f"{self.who}: {what}{more}")
        self.last = t
        self.skipped = 0


class ProducerState:
    """What producer j sent: locs[n] is the location acknowledged for value
    n, or UNACKED / ERRORED / ACKED_NO_OFFSET. Written by the producer's
    thread only (delivery reports run inside its poll and flush)."""

    def __init__(self, j):
        self.j = j
        self.locs = array("q")
        self.acked = 0
        self.errors = 0
        self.purged = 0
        self.loop_done = threading.Event()
        self.finished = threading.Event()


class LiveState:
    """What the live consumer read: per partition, offsets and value ids in
    reading order. Written by the live consumer's thread only."""

    def __init__(self, partitions):
        self.offsets = [array("q") for _ in range(partitions)]
        self.ids = [array("q") for _ in range(partitions)]
        self.last = [-1] * partitions
        self.non_monotonic = 0
        self.read = 0


class DrainState:
    """What the final drain read: per partition, the value id at each
    offset (MISSING where it read nothing). Offsets far past the end go to
    a dict, so that a wild offset cannot blow the array up."""

    MAX_GAP = 1_000_000

    def __init__(self, partitions):
        self.ids = [array("q") for _ in range(partitions)]
        self.far = [{} for _ in range(partitions)]
        self.next = [0] * partitions  # the next offset to read
        self.high = [None] * partitions  # last known high watermarks
        self.inconsistent = 0  # one offset read twice with different values
        self.complete = False

    def put(self, p, o, vid):
        ids = self.ids[p]
        if o < len(ids):
            old = ids[o]
        else:
            old = self.far[p].get(o, MISSING)
        if old != MISSING:
            if old != vid:
                self.inconsistent += 1
            return
        if o < len(ids):
            ids[o] = vid
        elif o - len(ids) <= self.MAX_GAP:
            if o > len(ids):
                ids.extend(array("q", [MISSING]) * (o - len(ids)))
            ids.append(vid)
        else:
            self.far[p][o] = vid

    def at(self, p, o):
        ids = self.ids[p]
        if o < len(ids):
            return ids[o]
        return self.far[p].get(o, MISSING)

    def records(self, p):
        """(offset, id) of every record read in partition p."""
        for o, vid in enumerate(array("q", self.ids[p])):
            if vid != MISSING:
                yield o, vid
        yield from list(self.far[p].items())


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()  # foreign ids, samples, internal errors
        self.producers = [ProducerState(j) for j in range(args.producers)]
        self.live = LiveState(args.partitions)
        self.drain = DrainState(args.partitions)
        self.foreign_ids = {}  # bytes -> negative id
        self.foreign_values = []
        self.error_sample = []
        self.non_monotonic_sample = []
        self.internal_errors = []

    def value_id(self, value):
        """The id of a value read: (j << 40) | n for b"p{j}-{n}", else a
        negative id, the same for equal values."""
        if value is not None and value[:1] == b"p":
            j, sep, n = value[1:].partition(b"-")
            if sep and j.isdigit() and n.isdigit():
                j, n = int(j), int(n)
                if j < len(self.producers) and n <= LOW and b"p%d-%d" % (j, n) == value:
                    return (j << SHIFT) | n
        key = b"\0null" if value is None else bytes(value)
        with self.lock:
            vid = self.foreign_ids.get(key)
            if vid is None:
                self.foreign_values.append(key)
                vid = -len(self.foreign_values)
                self.foreign_ids[key] = vid
            return vid

    def show_value(self, vid):
        if vid >= 0:
            return f"p{vid >> SHIFT}-{vid & LOW}"
        with self.lock:
            return "foreign " + repr(self.foreign_values[-vid - 1])

    def note(self, sample, text):
        with self.lock:
            if len(sample) < SAMPLE:
                sample.append(text)

    def internal_error(self, where):
        text = f"{where}: {traceback.format_exc(limit=3)}"
        log(text)
        with self.lock:
            self.internal_errors.append(text[-500:])


def guarded(state, where, fn, *args):
    """Runs fn(*args), recording any exception as an internal error."""
    try:
        fn(*args)
    except Exception:
        state.internal_error(where)


def start_thread(state, where, fn, *args):
    t = threading.Thread(target=guarded, args=(state, where, fn) + args, name=where, daemon=True)
    t.start()
    return t


def close_within(client, seconds):
    """close() on another thread, waiting for it at most `seconds`."""
    t = threading.Thread(target=lambda: guarded_close(client), daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        log(f"close() still blocked after {seconds} s; leaving it")


def guarded_close(client):
    try:
        client.close()
    except Exception as e:
        log(f"close(): {e}")


def client_conf(args, **extra):
    conf = {
        "bootstrap.servers": args.bootstrap,
        # Reconnect quickly to a restarted broker, and give up quickly on a
        # stopped one.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 1000,
        "socket.timeout.ms": 10000,
    }
    conf.update(extra)
    return conf


def consumer_conf(args, role):
    return client_conf(
        args,
        **{
            "group.id": f"replication-workload-{role}-{uuid.uuid4().hex}",
            "client.id": f"replication-workload-{role}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "error_cb": (lambda err, say=RateLimitedLog(role): say(str(err))),
        },
    )


def assign_all(consumer, args):
    consumer.assign([TopicPartition(args.topic, p, 0) for p in range(args.partitions)])


# --- producers


def produce(state, st, stop_at, flush_until):
    """Producer st.j: sends until stop_at, then flushes until flush_until;
    what is still queued then is purged (and stays UNACKED)."""
    args = state.args
    j = st.j
    say = RateLimitedLog(f"producer {j}")
    producer = Producer(
        client_conf(
            args,
            **{
                "client.id": f"replication-workload-p{j}",
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": 120000,
                "request.timeout.ms": 10000,
                "retries": 2147483647,
                "error_cb": lambda err: say(str(err)),
            },
        )
    )

    def delivered(err, msg):
        n = int(msg.value().split(b"-", 1)[1])
        if err is None:
            o = msg.offset()
            st.locs[n] = pack(msg.partition(), o) if o is not None and o >= 0 else ACKED_NO_OFFSET
            st.acked += 1
        elif err.code() in PURGED:
            st.purged += 1
        else:
            st.locs[n] = ERRORED
            st.errors += 1
            state.note(state.error_sample, f"p{j}-{n}: {err}")

    topic, partitions, locs = args.topic, args.partitions, st.locs
    n = 0
    try:
        while now() < stop_at:
            if n - st.acked - st.errors - st.purged >= MAX_IN_FLIGHT:
                producer.poll(0.05)
                continue
            locs.append(UNACKED)
            try:
                producer.produce(topic, value=b"p%d-%d" % (j, n), partition=n % partitions, on_delivery=delivered)
            except BufferError:
                locs.pop()
                producer.poll(0.05)
                continue
            except KafkaException as e:
                locs.pop()
                if e.args[0].fatal():
                    state.note(state.error_sample, f"p{j}: produce() fatal: {e}")
                    log(f"producer {j}: fatal error, stops producing: {e}")
                    break
                say(f"produce(): {e}")
                producer.poll(0.05)
                continue
            n += 1
            if n % BURST == 0:
                producer.poll(0)
                time.sleep(0.001)
    finally:
        st.loop_done.set()
    left = producer.flush(max(0.0, flush_until - now()))
    if left:
        log(f"producer {j}: {left} messages unacknowledged after the flush; purging them")
        producer.purge()
        producer.flush(5)
    log(f"producer {j}: sent={n} acked={st.acked} errors={st.errors} purged={st.purged}")


# --- consumers


def record_live(state, msgs, say):
    live = state.live
    for m in msgs:
        err = m.error()
        if err is not None:
            say(f"consume(): {err}")
            continue
        p, o = m.partition(), m.offset()
        if o <= live.last[p]:
            live.non_monotonic += 1
            state.note(state.non_monotonic_sample, f"partition {p}: offset {o} after {live.last[p]}")
        live.last[p] = o
        live.offsets[p].append(o)
        live.ids[p].append(state.value_id(m.value()))
        live.read += 1


def live_consume(state, stop):
    """Reads every partition from offset 0 until `stop` is set."""
    say = RateLimitedLog("live consumer")
    consumer = Consumer(consumer_conf(state.args, "live"))
    try:
        assign_all(consumer, state.args)
        while not stop.is_set():
            try:
                msgs = consumer.consume(1000, 0.2)
            except KafkaException as e:
                say(f"consume(): {e}")
                time.sleep(0.1)
                continue
            record_live(state, msgs, say)
    finally:
        close_within(consumer, CLOSE_SECONDS)


def high_watermark(consumer, topic, p, deadline, say):
    """The partition's high watermark, asking until the deadline (None if
    no answer came)."""
    while now() < deadline:
        try:
            got = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=max(0.5, min(10.0, deadline - now())), cached=False
            )
            if got is not None:
                return got[1]
            say(f"watermarks of partition {p}: no answer in time")
        except KafkaException as e:
            say(f"watermarks of partition {p}: {e}")
            time.sleep(0.5)
    return None


def drain(state, deadline):
    """Reads every partition from offset 0 until the position reaches the
    high watermark everywhere (asked again once reached, in case it grew),
    or until the deadline."""
    args, d = state.args, state.drain
    say = RateLimitedLog("drain")
    consumer = Consumer(consumer_conf(args, "drain"))
    try:
        assign_all(consumer, args)
        for p in range(args.partitions):
            d.high[p] = high_watermark(consumer, args.topic, p, deadline, say)
        log(f"drain: high watermarks {d.high}")
        while now() < deadline:
            behind = [p for p in range(args.partitions) if d.high[p] is None or d.next[p] < d.high[p]]
            if not behind:
                # Every partition reached: ask again; done unless one grew.
                grown = False
                for p in range(args.partitions):
                    h = high_watermark(consumer, args.topic, p, deadline, say)
                    if h is None:
                        grown = True
                    elif h != d.high[p]:
                        grown = grown or h > d.next[p]
                        d.high[p] = h
                if not grown:
                    d.complete = True
                    break
                continue
            for p in behind:
                if d.high[p] is None:
                    d.high[p] = high_watermark(consumer, args.topic, p, min(deadline, now() + 5), say)
            try:
                msgs = consumer.consume(1000, 0.5)
            except KafkaException as e:
                say(f"consume(): {e}")
                time.sleep(0.1)
                continue
            for m in msgs:
                err = m.error()
                if err is not None:
                    say(f"consume(): {err}")
                    continue
                p, o = m.partition(), m.offset()
                d.put(p, o, state.value_id(m.value()))
                d.next[p] = max(d.next[p], o + 1)
            # The position also moves past what is not handed out (control
            # records).
            for tp in consumer.position([TopicPartition(args.topic, p) for p in behind]):
                if tp.offset is not None and tp.offset >= 0:
                    d.next[tp.partition] = max(d.next[tp.partition], tp.offset)
        if not d.complete:
            log(f"drain: incomplete at the deadline: positions {d.next}, high watermarks {d.high}")
    finally:
        close_within(consumer, CLOSE_SECONDS)


# --- the checker


def check(state, timed_out):
    """The RESULT object, from what has been gathered so far."""
    args, d, live = state.args, state.drain, state.live
    locs = [array("q", st.locs) for st in state.producers]
    found = [array("q", [MISSING]) * len(l) for l in locs]
    others = {}  # ids outside what was sent -> their first location
    dups = {}  # id -> every location, for values found more than once
    for p in range(args.partitions):
        for o, vid in d.records(p):
            loc = pack(p, o)
            j, n = vid >> SHIFT, vid & LOW
            if vid >= 0 and n < len(found[j]):
                first = found[j][n]
                if first == MISSING:
                    found[j][n] = loc
                    continue
            else:
                first = others.setdefault(vid, loc)
                if first == loc:
                    continue
            dups.setdefault(vid, [first]).append(loc)
    read = len(others) + sum(len(f) - f.count(MISSING) for f in found)

    acknowledged = acked_without_offset = lost = mismatch = unacknowledged = 0
    lost_sample, mismatch_sample = [], []
    for j, (l, f) in enumerate(zip(locs, found)):
        for n, loc in enumerate(l):
            if loc == UNACKED:
                unacknowledged += 1
            if loc < 0 and loc != ACKED_NO_OFFSET:
                continue
            acknowledged += 1
            if loc == ACKED_NO_OFFSET:
                acked_without_offset += 1
            where = f[n]
            if where == MISSING:
                lost += 1
                if len(lost_sample) < SAMPLE:
                    acked_at = "without offset" if loc < 0 else show_location(loc)
                    lost_sample.append(f"p{j}-{n} (acknowledged at {acked_at})")
            elif loc == ACKED_NO_OFFSET:
                continue
            elif loc not in dups.get((j << SHIFT) | n, (where,)):
                mismatch += 1
                if len(mismatch_sample) < SAMPLE:
                    mismatch_sample.append(
                        f"p{j}-{n}: acknowledged at {show_location(loc)}, found at {show_location(where)}"
                    )

    vanished = set()
    vanished_sample = []
    for p in range(args.partitions):
        for o, vid in zip(array("q", live.offsets[p]), array("q", live.ids[p])):
            now_there = d.at(p, o)
            if now_there != vid and (p, o, vid) not in vanished:
                vanished.add((p, o, vid))
                if len(vanished_sample) < SAMPLE:
                    instead = "nothing" if now_there == MISSING else state.show_value(now_there)
                    vanished_sample.append(f"{p}@{o}: read {state.show_value(vid)}, the drain found {instead}")

    duplicated_sample = [
        f"{state.show_value(vid)} at " + ", ".join(show_location(x) for x in where)
        for vid, where in list(dups.items())[:SAMPLE]
    ]
    with state.lock:
        error_sample = list(state.error_sample)
        non_monotonic_sample = list(state.non_monotonic_sample)
        internal_errors = list(state.internal_errors)
    return {
        "acknowledged": acknowledged,
        "read": read,
        "lost": lost,
        "duplicated": len(dups),
        "vanished": len(vanished),
        "offset_mismatch": mismatch,
        "offsets_non_monotonic": live.non_monotonic,
        "errors": sum(st.errors for st in state.producers),
        "unacknowledged": unacknowledged,
        "lost_sample": lost_sample,
        "duplicated_sample": duplicated_sample,
        "vanished_sample": vanished_sample,
        "error_sample": error_sample,
        "sent": sum(len(l) for l in locs),
        "live_read": live.read,
        "acked_without_offset": acked_without_offset,
        "foreign": sum(1 for vid in others if vid < 0),
        "drain_inconsistent": d.inconsistent,
        "offset_mismatch_sample": mismatch_sample,
        "non_monotonic_sample": non_monotonic_sample,
        "drain_complete": d.complete,
        "high_watermarks": list(d.high),
        "internal_errors": internal_errors,
        "timed_out": timed_out,
    }


# --- the result line, printed once


PRINT_LOCK = threading.Lock()


def finish(state, timed_out, code):
    """Prints the RESULT line and exits at once (os._exit: no client's
    destructor may block the exit). Only the first caller prints."""
    with PRINT_LOCK:
        try:
            if state.args.foreign_out:
                write_foreign(state)
            result = check(state, timed_out)
        except Exception:
            state.internal_error("check")
            result = {"timed_out": timed_out, "internal_errors": list(state.internal_errors)}
        print("RESULT " + json.dumps(result, separators=(",", ":")), flush=True)
        sys.stderr.flush()
        os._exit(code)


def write_foreign(state):
    """Writes the drained records no producer of this run sent (see
    --foreign-out)."""
    with open(state.args.foreign_out, "w") as f:
        for p in range(state.args.partitions):
            for o, vid in state.drain.records(p):
                if vid < 0:
                    value = state.foreign_values[-vid - 1].decode("utf-8", "replace")
                    f.write(json.dumps([p, o, value]) + "\n")


def watchdog(state, at):
    time.sleep(max(0.0, at - now()))
    log("watchdog: out of time; reporting what there is")
    finish(state, True, 2)


def write_status(path, line, mode):
    if path:
        with open(path, mode) as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())


def progress(state, started):
    sts = state.producers
    log(
        f"progress t={now() - started:.0f}s sent={sum(len(st.locs) for st in sts)}"
        f" acked={sum(st.acked for st in sts)} errors={sum(st.errors for st in sts)}"
        f" live_read={state.live.read} non_monotonic={state.live.non_monotonic}"
    )


def run(state, started):
    args = state.args
    stop_live = threading.Event()
    live = start_thread(state, "live consumer", live_consume, state, stop_live)

    write_status(args.status_file, "producing", "w")
    stop_at = now() + args.seconds
    flush_until = stop_at + FLUSH_SECONDS
    producers = [start_thread(state, f"producer {st.j}", produce, state, st, stop_at, flush_until) for st in state.producers]
    log(f"producing for {args.seconds} s with {args.producers} producers")
    next_progress = now() + PROGRESS_SECONDS
    while not all(st.loop_done.is_set() or not t.is_alive() for st, t in zip(state.producers, producers)):
        time.sleep(0.1)
        if now() >= next_progress:
            progress(state, started)
            next_progress += PROGRESS_SECONDS
    write_status(args.status_file, "done", "a")
    log("producing stopped; flushing")
    progress(state, started)

    for t in producers:
        t.join(max(0.0, flush_until + 10 - now()))
        if t.is_alive():
            log(f"{t.name} still flushing; going on")
    progress(state, started)
    stop_live.set()
    live.join(CLOSE_SECONDS + 5)

    log("final drain")
    deadline = min(now() + DRAIN_SECONDS, started + args.seconds + DRAIN_CAP)
    guarded(state, "drain", drain, state, deadline)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT[,HOST:PORT...]")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--status-file")
    parser.add_argument("--foreign-out")
    args = parser.parse_args(argv)
    if args.partitions < 1 or args.producers < 1 or args.seconds < 0:
        parser.error("--partitions and --producers must be at least 1, --seconds not negative")
    return args


def main(argv=None):
    args = parse_args(argv)
    started = now()
    state = State(args)
    threading.Thread(target=watchdog, args=(state, started + args.seconds + WATCHDOG), daemon=True).start()
    try:
        run(state, started)
    except Exception:
        state.internal_error("main")
    finish(state, False, 1 if state.internal_errors else 0)


if __name__ == "__main__":
    main()
