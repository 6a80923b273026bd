#!/usr/bin/env python3
"""Client patterns that stress the broker's memory, one per run.

Usage: python3 memory_patterns.py BOOTSTRAP PATTERN [options]

A Rust integration test starts the broker, runs this script with one
PATTERN, samples the broker's RSS (VmRSS in /proc/PID/status) while it
runs and after it ends, and checks that the RSS stays bounded and comes
back down. The script prints `progress PATTERN k=v ...` lines while it
works and, last, exactly one line `done PATTERN k=v ...` with its counts,
then exits 0. A protocol error (wrong correlation id, an unexpected error
code, a malformed or truncated response, a connection the broker should
have kept closing) raises: traceback, non-zero exit, no `done` line.

Every loop is bounded by a count and by the wall-clock deadline
`--max-seconds` (120 s by default) and stops by itself; the `done` line
says `stopped=count` or `stopped=deadline`. A watchdog (faulthandler)
dumps every thread's stack and exits non-zero 30 s past the deadline, in
case something blocks. BOOTSTRAP must be a loopback address; the script
connects to nothing else (and checks that the brokers the metadata
advertises are loopback too). Every socket it opens is closed.

Most patterns speak the Kafka wire protocol over plain sockets (non-flexible
request versions, so no tagged fields: ApiVersions v0, Metadata v1,
ListOffsets v1, CreateTopics v2, DeleteTopics v1, Fetch v4,
FindCoordinator v1, JoinGroup v4, SyncGroup v1, LeaveGroup v1); the
producing ones use confluent-kafka (imported only by them).

Patterns and what each proves:

long-polls           A fetcher that polls empty partitions (Fetch v4, all
                     200 partitions of `--topic` at their log end,
                     max_wait_ms=5) `--waits` partition-waits in all, over
                     `--consumers` connections: parked long polls and
                     their wake-ups leave nothing behind. Answers carrying
                     data are counted (`with_data`, 0 on an empty topic).
idle-connections     `--connections` connections, each answered one
                     ApiVersions v0, held `--hold-seconds`, closed, for
                     `--rounds` rounds: the per-connection state is
                     bounded and freed on close (every connection must be
                     answered, or the script fails).
half-frames          `--connections` connections each send a size prefix
                     claiming 100 MiB and 1000 bytes of a Produce request,
                     then stall for `--hold-seconds`: a claimed size must
                     not cost its whole size in resident memory, and
                     `probes` fresh connections say whether the broker
                     still answers others meanwhile. Reports how many the
                     broker closed.
overload-producer    `--producers` confluent-kafka producers (acks=all,
                     linger.ms=5, batch.size=1 MiB, a large queue) produce
                     1 KiB values to `--partitions` partitions as fast as
                     they can for `--seconds`: the broker's memory under
                     more load than it can sync stays bounded.
nonreading-consumer  After `--mib` MiB are produced to one partition,
                     `--connections` connections (SO_RCVBUF 4096) pipeline
                     `--requests` Fetch v4 requests of 50 MiB each and
                     never read: the answers they cannot take must not pile
                     up in memory, and a reading fetcher must still read
                     the whole partition in time (`read_seconds`).
group-churn          `--rounds` times JoinGroup (MEMBER_ID_REQUIRED, then
                     rejoin), SyncGroup as leader, LeaveGroup, over
                     `--groups` group ids: group and member state is freed
                     when members leave. Start the broker with
                     group.initial_rebalance_delay_ms=0.
topic-churn          `--rounds` times create `churn-<i % 10>` (4
                     partitions) and delete it: a deleted topic's
                     partitions, logs and metadata are freed.
"""
import argparse
import collections
import errno
import faulthandler
import ipaddress
import math
import resource
import selectors
import socket
import struct
import sys
import threading
import time

CLIENT_ID = "memory-patterns"
WATCHDOG_GRACE_S = 30
REQUEST_TIMEOUT_S = 30.0

# API keys.
PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
METADATA = 3
FIND_COORDINATOR = 10
JOIN_GROUP = 11
LEAVE_GROUP = 13
SYNC_GROUP = 14
API_VERSIONS = 18
CREATE_TOPICS = 19
DELETE_TOPICS = 20

# Error codes.
NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
LEADER_NOT_AVAILABLE = 5
TOPIC_ALREADY_EXISTS = 36
MEMBER_ID_REQUIRED = 79

MIB = 1024 * 1024


class ProtocolError(Exception):
    """The broker answered something this script did not expect."""


# --- encoding ---------------------------------------------------------------


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def string(s):
    """A (nullable) STRING: int16 length, UTF-8 bytes; None is length -1."""
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def blob(b):
    """A (nullable) BYTES: int32 length, bytes; None is length -1."""
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def array(items, encode):
    return i32(len(items)) + b"".join(encode(x) for x in items)


def request_frame(api_key, version, correlation_id, body):
    """A request frame with its size prefix (request header v1)."""
    frame = i16(api_key) + i16(version) + i32(correlation_id) + string(CLIENT_ID) + body
    return i32(len(frame)) + frame


# --- decoding ---------------------------------------------------------------


class Reader:
    """Reads a response body field by field; `end()` checks nothing is left."""

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def _fixed(self, fmt, size):
        if self.pos + size > len(self.buf):
            raise ProtocolError(f"response truncated at byte {self.pos}")
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def i8(self):
        return self._fixed(">b", 1)

    def i16(self):
        return self._fixed(">h", 2)

    def i32(self):
        return self._fixed(">i", 4)

    def i64(self):
        return self._fixed(">q", 8)

    def _span(self, n):
        if n < 0:
            return None
        if self.pos + n > len(self.buf):
            raise ProtocolError(f"response truncated at byte {self.pos}")
        b = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return b

    def string(self):
        b = self._span(self.i16())
        return None if b is None else b.decode()

    def blob(self):
        return self._span(self.i32())

    def array(self, decode):
        n = self.i32()
        return None if n < 0 else [decode(self) for _ in range(n)]

    def end(self):
        if self.pos != len(self.buf):
            raise ProtocolError(f"{len(self.buf) - self.pos} unread bytes at the end of a response")


def expect(error, wanted, what):
    if error not in wanted:
        raise ProtocolError(f"{what}: error code {error}, expected one of {sorted(wanted)}")


# --- connections ------------------------------------------------------------


def is_loopback(host):
    """True when every address `host` resolves to is a loopback address."""
    infos = socket.getaddrinfo(host.strip("[]"), 0, type=socket.SOCK_STREAM)
    return all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def loopback_address(bootstrap):
    """(family, sockaddr) of HOST:PORT, which must be a loopback address."""
    host, sep, port = bootstrap.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"bootstrap {bootstrap!r} is not HOST:PORT")
    host = host.strip("[]")
    family, _, _, _, sockaddr = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0]
    if not ipaddress.ip_address(sockaddr[0]).is_loopback:
        raise SystemExit(f"bootstrap {bootstrap!r} is not a loopback address")
    return family, sockaddr


class Conn:
    """One blocking Kafka connection; requests may be pipelined (send, send,
    recv, recv): answers are matched to requests by correlation id, in order."""

    def __init__(self, addr, rcvbuf=None, timeout=REQUEST_TIMEOUT_S):
        family, sockaddr = addr
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                # Before connect, so the advertised window is small from the start.
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.settimeout(timeout)
            self.sock.connect(sockaddr)
        except BaseException:
            self.sock.close()
            raise
        self.next_correlation = 1
        self.pending = collections.deque()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send(self, api_key, version, body):
        correlation = self.next_correlation
        self.next_correlation += 1
        self.sock.sendall(request_frame(api_key, version, correlation, body))
        self.pending.append((correlation, api_key, version))
        return correlation

    def recv(self):
        """The body of the oldest unanswered request's response, after its
        correlation id."""
        correlation, api_key, version = self.pending.popleft()
        (size,) = struct.unpack(">i", self._read(4))
        if size < 4:
            raise ProtocolError(f"response frame of {size} bytes")
        body = self._read(size)
        (got,) = struct.unpack_from(">i", body)
        if got != correlation:
            raise ProtocolError(
                f"api {api_key} v{version}: correlation id {got}, expected {correlation}"
            )
        return Reader(body, 4)

    def request(self, api_key, version, body):
        self.send(api_key, version, body)
        return self.recv()

    def _read(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if k == 0:
                raise ProtocolError(f"broker closed the connection ({got} of {n} bytes read)")
            got += k
        return buf


class Progress:
    """Prints `progress PATTERN k=v ...` at most once a second."""

    def __init__(self, pattern, every=1.0):
        self.pattern = pattern
        self.every = every
        self.next = time.monotonic() + every
        self.lock = threading.Lock()

    def tick(self, **counts):
        now = time.monotonic()
        if now < self.next:
            return
        with self.lock:
            if now < self.next:
                return
            self.next = now + self.every
        say("progress", self.pattern, **counts)


def say(*words, **counts):
    print(" ".join([*words, *(f"{k}={v}" for k, v in counts.items())]), flush=True)


def run_threads(target, args_list):
    """Runs target(*args) in one thread each; re-raises the first failure."""
    errors = []

    def run(args):
        try:
            target(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)

    threads = [threading.Thread(target=run, args=(a,), daemon=True) for a in args_list]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def remaining(deadline):
    return deadline - time.monotonic()


def peek_closed(sock):
    """True when the broker closed (FIN or RST) a socket we never read."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


# --- requests ---------------------------------------------------------------


def api_versions(conn):
    r = conn.request(API_VERSIONS, 0, b"")
    error = r.i16()
    keys = r.array(lambda r: (r.i16(), r.i16(), r.i16()))
    r.end()
    expect(error, {NONE}, "ApiVersions")
    return {k: (lo, hi) for k, lo, hi in keys}


def metadata(conn, topics):
    """Metadata v1: (brokers [(node, host, port)], {topic: (error, {partition: (error, leader)})})."""
    r = conn.request(METADATA, 1, array(topics, string))
    brokers = r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string())[:3])
    r.i32()  # controller id

    def partition(r):
        error, index, leader = r.i16(), r.i32(), r.i32()
        r.array(Reader.i32)  # replicas
        r.array(Reader.i32)  # isr
        return index, (error, leader)

    def topic(r):
        error, name = r.i16(), r.string()
        r.i8()  # is_internal
        return name, (error, dict(r.array(partition)))

    topics = dict(r.array(topic))
    r.end()
    return brokers, topics


def create_topics(conn, topics, timeout_ms=30000):
    """CreateTopics v2 of [(name, partitions)]: {name: (error, message)}."""

    def topic(t):
        name, partitions = t
        # replication factor 1, no assignments, no configs
        return string(name) + i32(partitions) + i16(1) + i32(0) + i32(0)

    r = conn.request(CREATE_TOPICS, 2, array(topics, topic) + i32(timeout_ms) + i8(0))
    r.i32()  # throttle
    out = dict(r.array(lambda r: (r.string(), (r.i16(), r.string()))))
    r.end()
    return out


def delete_topics(conn, names, timeout_ms=30000):
    """DeleteTopics v1: {name: error}."""
    r = conn.request(DELETE_TOPICS, 1, array(names, string) + i32(timeout_ms))
    r.i32()  # throttle
    out = dict(r.array(lambda r: (r.string(), r.i16())))
    r.end()
    return out


def list_offsets(conn, topic, partitions, timestamp):
    """ListOffsets v1 (timestamp -1 latest, -2 earliest): {partition: offset}."""
    body = i32(-1) + array(
        [topic], lambda t: string(t) + array(list(range(partitions)), lambda p: i32(p) + i64(timestamp))
    )
    r = conn.request(LIST_OFFSETS, 1, body)

    def partition(r):
        index, error = r.i32(), r.i16()
        r.i64()  # timestamp
        offset = r.i64()
        expect(error, {NONE}, f"ListOffsets {topic}-{index}")
        return index, offset

    out = {}
    for name, parts in r.array(lambda r: (r.string(), r.array(partition))):
        if name != topic:
            raise ProtocolError(f"ListOffsets answered topic {name!r}")
        out.update(parts)
    r.end()
    if sorted(out) != list(range(partitions)):
        raise ProtocolError(f"ListOffsets answered partitions {sorted(out)}")
    return out


def fetch_body(topic, offsets, max_wait_ms, min_bytes, max_bytes, partition_max_bytes):
    """A Fetch v4 request body for {partition: offset} of one topic."""
    parts = sorted(offsets.items())
    return (
        i32(-1)
        + i32(max_wait_ms)
        + i32(min_bytes)
        + i32(max_bytes)
        + i8(0)  # read_uncommitted
        + array(
            [topic],
            lambda t: string(t)
            + array(parts, lambda p: i32(p[0]) + i64(p[1]) + i32(partition_max_bytes)),
        )
    )


def fetch_response(r):
    """Fetch v4 response: [(topic, partition, error, high_watermark, records)]."""
    r.i32()  # throttle
    out = []
    for _ in range(r.i32()):
        topic = r.string()
        for _ in range(r.i32()):
            partition, error, high_watermark = r.i32(), r.i16(), r.i64()
            r.i64()  # last stable offset
            r.array(lambda r: (r.i64(), r.i64()))  # aborted transactions
            out.append((topic, partition, error, high_watermark, r.blob()))
    r.end()
    return out


def batches_end(records):
    """(records, next offset) of the whole RecordBatches in a fetched
    records blob (a trailing partial batch is ignored); (0, None) if none."""
    pos, count, next_offset = 0, 0, None
    while pos + 61 <= len(records):
        base_offset, length = struct.unpack_from(">qi", records, pos)
        if pos + 12 + length > len(records):
            break
        magic = records[pos + 16]
        if magic != 2:
            raise ProtocolError(f"record batch magic {magic}")
        (last_delta,) = struct.unpack_from(">i", records, pos + 23)
        count += last_delta + 1
        next_offset = base_offset + last_delta + 1
        pos += 12 + length
    return count, next_offset


def ensure_topic(conn, name, partitions, deadline):
    """Creates a topic (or finds it existing with that many partitions) and
    waits until every partition has a leader; checks brokers are loopback."""
    error, message = create_topics(conn, [(name, partitions)])[name]
    expect(error, {NONE, TOPIC_ALREADY_EXISTS}, f"CreateTopics {name} ({message})")
    while True:
        brokers, topics = metadata(conn, [name])
        for _, host, port in brokers:
            if not is_loopback(host):
                raise ProtocolError(f"broker advertises {host}:{port}, not loopback")
        error, parts = topics.get(name, (None, {}))
        if error == NONE and len(parts) == partitions and all(
            e == NONE and leader >= 0 for e, leader in parts.values()
        ):
            return
        if error == NONE and len(parts) not in (0, partitions):
            raise ProtocolError(f"topic {name} has {len(parts)} partitions, wanted {partitions}")
        expect(error, {NONE, LEADER_NOT_AVAILABLE}, f"Metadata {name}")
        if remaining(deadline) <= 0:
            raise ProtocolError(f"topic {name} has no leaders before the deadline")
        time.sleep(0.05)


# --- bulk non-blocking connections -------------------------------------------


def open_answered(addr, count, deadline, window=512):
    """Opens `count` non-blocking connections, at most `window` of them
    connecting or awaiting their answer at once; each sends ApiVersions v0
    and reads its answer. Returns (sockets, connected, answered, failed):
    every socket opened (the caller closes them), answered ones still open."""
    family, sockaddr = addr
    frame = request_frame(API_VERSIONS, 0, 1, b"")
    sockets, busy = [], {}
    started = connected = answered = failed = 0
    sel = selectors.DefaultSelector()

    def drop(sock):
        nonlocal failed
        failed += 1
        sel.unregister(sock)
        del busy[sock]
        sock.close()

    try:
        while (started < count or busy) and remaining(deadline) > 0:
            while started < count and len(busy) < window:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sockets.append(sock)
                started += 1
                sock.setblocking(False)
                rc = sock.connect_ex(sockaddr)
                if rc not in (0, errno.EINPROGRESS):
                    failed += 1
                    sock.close()
                    continue
                busy[sock] = bytearray()
                sel.register(sock, selectors.EVENT_WRITE)
            for key, _ in sel.select(timeout=min(1.0, max(0.0, remaining(deadline)))):
                sock = key.fileobj
                if key.events == selectors.EVENT_WRITE:
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        drop(sock)
                        continue
                    connected += 1
                    if sock.send(frame) != len(frame):
                        raise ProtocolError("ApiVersions request did not fit a fresh socket")
                    sel.modify(sock, selectors.EVENT_READ)
                    continue
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except ConnectionError:
                    drop(sock)
                    continue
                if not chunk:
                    drop(sock)
                    continue
                buf = busy[sock]
                buf += chunk
                if len(buf) < 4 or len(buf) < 4 + struct.unpack_from(">i", buf)[0]:
                    continue
                r = Reader(buf, 4)
                if r.i32() != 1:
                    raise ProtocolError("ApiVersions answer with a wrong correlation id")
                expect(r.i16(), {NONE}, "ApiVersions")
                r.array(lambda r: (r.i16(), r.i16(), r.i16()))
                r.end()
                answered += 1
                sel.unregister(sock)
                del busy[sock]
    except BaseException:
        close_all(sockets)
        raise
    finally:
        sel.close()
    return sockets, connected, answered, failed


def close_all(sockets):
    for sock in sockets:
        sock.close()


def raise_nofile(wanted):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(f"RLIMIT_NOFILE hard limit {hard} is below the {wanted} descriptors needed")


# --- confluent-kafka producing ---------------------------------------------------


def produce_for(bootstrap, topic, value, count, seconds, deadline, conf, progress=None):
    """One confluent-kafka producer sends `value` up to `count` times or for
    `seconds`, then flushes until the deadline (what is still queued then
    is purged). Returns {produced, ok, errors, purged, first_error}."""
    from confluent_kafka import KafkaError, Producer

    stats = collections.Counter()
    first_error = []

    def delivered(err, _msg):
        if err is None:
            stats["ok"] += 1
        elif err.code() == KafkaError._PURGE_QUEUE or err.code() == KafkaError._PURGE_INFLIGHT:
            stats["purged"] += 1
        else:
            stats["errors"] += 1
            if not first_error:
                first_error.append(str(err))

    producer = Producer({"bootstrap.servers": bootstrap, "client.id": CLIENT_ID, **conf})
    stop = min(time.monotonic() + seconds, deadline)
    produced = 0
    while produced < count and time.monotonic() < stop:
        try:
            producer.produce(topic, value, on_delivery=delivered)
        except BufferError:
            producer.poll(0.01)
            continue
        produced += 1
        if produced % 1000 == 0:
            producer.poll(0)
            if progress:
                progress.tick(produced=produced, ok=stats["ok"], errors=stats["errors"])
    left = producer.flush(max(0.0, remaining(deadline)))
    if left:
        producer.purge()
        producer.flush(5)
    stats["produced"] = produced
    stats["first_error"] = first_error[0] if first_error else None
    return stats


# --- patterns -------------------------------------------------------------------


def long_polls(args, addr, deadline):
    partitions = 200
    with Conn(addr) as conn:
        ensure_topic(conn, args.topic, partitions, deadline)
        ends = list_offsets(conn, args.topic, partitions, -1)
    body = fetch_body(args.topic, ends, 5, 1, 50 * MIB, MIB)
    total_fetches = math.ceil(args.waits / partitions)
    # The fetches split over the consumers' connections.
    share, extra = divmod(total_fetches, args.consumers)
    per = [share + (i < extra) for i in range(args.consumers)]
    counts = collections.Counter()
    lock = threading.Lock()
    progress = Progress(args.pattern)
    start = time.monotonic()

    def poller(fetches):
        with Conn(addr) as conn:
            for _ in range(fetches):
                if remaining(deadline) <= 0:
                    return
                parts = fetch_response(conn.request(FETCH, 4, body))
                if len(parts) != partitions:
                    raise ProtocolError(f"Fetch answered {len(parts)} partitions")
                for topic, partition, error, _, _ in parts:
                    expect(error, {NONE}, f"Fetch {topic}-{partition}")
                data = any(records for *_, records in parts)
                with lock:
                    counts["fetches"] += 1
                    counts["with_data"] += data
                progress.tick(fetches=counts["fetches"], with_data=counts["with_data"])

    run_threads(poller, [(n,) for n in per])
    return dict(
        fetches=counts["fetches"],
        waits=counts["fetches"] * partitions,
        with_data=counts["with_data"],
        consumers=args.consumers,
        seconds=f"{time.monotonic() - start:.2f}",
        stopped="count" if counts["fetches"] == total_fetches else "deadline",
    )


def idle_connections(args, addr, deadline):
    raise_nofile(args.connections + 64)
    totals = collections.Counter()
    rounds = 0
    start = time.monotonic()
    for rnd in range(args.rounds):
        if remaining(deadline) <= 0:
            break
        t0 = time.monotonic()
        sockets, connected, answered, failed = open_answered(addr, args.connections, deadline)
        try:
            opened_s = time.monotonic() - t0
            say("progress", args.pattern, round=rnd, connected=connected, answered=answered,
                failed=failed, open_seconds=f"{opened_s:.2f}")
            time.sleep(max(0.0, min(args.hold_seconds, remaining(deadline))))
            closed = sum(peek_closed(s) for s in sockets if s.fileno() >= 0)
        finally:
            close_all(sockets)
        if answered != args.connections and remaining(deadline) <= 0:
            break  # the deadline cut this round short: stopped=deadline
        if answered != args.connections or closed:
            raise ProtocolError(
                f"round {rnd}: {answered} of {args.connections} connections answered, "
                f"{failed} failed, {closed} closed by the broker while idle"
            )
        totals.update(connected=connected, answered=answered)
        rounds += 1
    return dict(
        rounds=rounds,
        connections=args.connections,
        connected=totals["connected"],
        answered=totals["answered"],
        seconds=f"{time.monotonic() - start:.2f}",
        stopped="count" if rounds == args.rounds else "deadline",
    )


def half_frame_start(correlation):
    """4-byte size prefix claiming 100 MiB, then the first 1000 bytes of a
    plausible Produce v3 request (header, then a body cut short)."""
    size = 100 * MIB - 1
    header = i16(PRODUCE) + i16(3) + i32(correlation) + string(CLIENT_ID)
    body = (
        string(None)  # transactional id
        + i16(-1)  # acks
        + i32(30000)
        + i32(1)
        + string("half-frames")
        + i32(1)
        + i32(0)
    )
    start = header + body
    start += i32(size - len(start) - 4)  # records: the rest of the frame
    return i32(size) + start + bytes(1000 - len(start))


def half_frames(args, addr, deadline):
    family, sockaddr = addr
    raise_nofile(args.connections + 64)
    sockets = []
    closed = set()
    progress = Progress(args.pattern)
    try:
        for i in range(args.connections):
            if remaining(deadline) <= 0:
                break
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.settimeout(REQUEST_TIMEOUT_S)
            sock.connect(sockaddr)
            sock.sendall(half_frame_start(i + 1))
            sock.setblocking(False)
        sent = len(sockets)
        say("progress", args.pattern, stalled=sent)
        # Does the broker still answer a new connection while these stall?
        probe_deadline = min(deadline, time.monotonic() + args.probe_seconds)
        probes, _, probes_answered, _ = open_answered(addr, args.probes, probe_deadline)
        close_all(probes)
        say("progress", args.pattern, probes=args.probes, probes_answered=probes_answered)
        hold_until = min(deadline, time.monotonic() + args.hold_seconds)
        while time.monotonic() < hold_until:
            for sock in sockets:
                if sock not in closed and peek_closed(sock):
                    closed.add(sock)
            progress.tick(stalled=sent, closed_by_broker=len(closed))
            time.sleep(min(0.2, max(0.0, hold_until - time.monotonic())))
        for sock in sockets:
            if sock not in closed and peek_closed(sock):
                closed.add(sock)
    finally:
        close_all(sockets)
    return dict(
        connections=sent,
        closed_by_broker=len(closed),
        probes=args.probes,
        probes_answered=probes_answered,
        stopped="count" if sent == args.connections and remaining(deadline) > 0 else "deadline",
    )


def overload_producer(args, addr, deadline):
    with Conn(addr) as conn:
        ensure_topic(conn, args.topic, args.partitions, deadline)
    conf = {
        "acks": "all",
        "linger.ms": 5,
        "batch.size": MIB,
        "queue.buffering.max.kbytes": args.queue_kbytes,
        "queue.buffering.max.messages": 2_000_000,
        "message.timeout.ms": int(args.max_seconds * 1000),
    }
    value = b"v" * 1024
    results = [None] * args.producers
    start = time.monotonic()

    def run(i):
        progress = Progress(f"{args.pattern} producer={i}")
        results[i] = produce_for(
            args.bootstrap, args.topic, value, sys.maxsize, args.seconds, deadline, conf, progress
        )

    run_threads(run, [(i,) for i in range(args.producers)])
    elapsed = time.monotonic() - start
    total = collections.Counter()
    for r in results:
        total.update({k: v for k, v in r.items() if k != "first_error"})
    first_error = next((r["first_error"] for r in results if r["first_error"]), None)
    if first_error:
        say("progress", args.pattern, first_error=repr(first_error))
    return dict(
        producers=args.producers,
        produced=total["produced"],
        ok=total["ok"],
        errors=total["errors"],
        purged=total["purged"],
        seconds=f"{elapsed:.2f}",
        msg_per_s=f"{total['ok'] / elapsed:.0f}",
        mib_per_s=f"{total['ok'] / 1024 / elapsed:.1f}",
        stopped="count" if total["ok"] + total["errors"] == total["produced"] else "deadline",
    )


def read_partition(addr, topic, start, end, deadline, progress):
    """Reads partition 0 of `topic` from `start` to `end` with a normal
    fetch loop (the way librdkafka fetches: 50 MiB per request, 1 MiB per
    partition, 500 ms long polls). Returns (records, fetches)."""
    offset, records, fetches = start, 0, 0
    with Conn(addr) as conn:
        while offset < end:
            if remaining(deadline) <= 0:
                raise ProtocolError(f"reader at offset {offset} of {end} at the deadline")
            body = fetch_body(topic, {0: offset}, 500, 1, 50 * MIB, MIB)
            parts = fetch_response(conn.request(FETCH, 4, body))
            fetches += 1
            if len(parts) != 1:
                raise ProtocolError(f"Fetch answered {len(parts)} partitions")
            _, _, error, _, blob_ = parts[0]
            expect(error, {NONE}, f"Fetch {topic}-0 at {offset}")
            count, next_offset = batches_end(blob_ or b"")
            if next_offset is not None:
                if next_offset <= offset:
                    raise ProtocolError(f"Fetch at {offset} answered batches ending at {next_offset}")
                records += count
                offset = next_offset
            progress.tick(read_offset=offset, end=end)
    return records, fetches


def nonreading_consumer(args, addr, deadline):
    messages = args.mib * 1024
    with Conn(addr) as conn:
        ensure_topic(conn, args.topic, 1, deadline)
    t0 = time.monotonic()
    conf = {
        "acks": "all",
        "linger.ms": 5,
        "batch.size": MIB,
        "message.timeout.ms": int(args.max_seconds * 1000),
    }
    stats = produce_for(
        args.bootstrap, args.topic, b"n" * 1024, messages, args.max_seconds, deadline, conf,
        Progress(args.pattern),
    )
    if stats["ok"] != messages:
        raise ProtocolError(f"produced {stats['ok']} of {messages} ({stats['first_error']})")
    say("progress", args.pattern, produced=stats["ok"], produce_seconds=f"{time.monotonic() - t0:.2f}")
    with Conn(addr) as conn:
        start = list_offsets(conn, args.topic, 1, -2)[0]
        end = list_offsets(conn, args.topic, 1, -1)[0]
    body = fetch_body(args.topic, {0: start}, 500, 1, 50 * MIB, 50 * MIB)
    stalled = []
    progress = Progress(args.pattern)
    try:
        for _ in range(args.connections):
            conn = Conn(addr, rcvbuf=4096)
            stalled.append(conn)
            for _ in range(args.requests):
                conn.send(FETCH, 4, body)
        held_from = time.monotonic()
        say("progress", args.pattern, nonreaders=len(stalled), requests_each=args.requests)
        t1 = time.monotonic()
        records, fetches = read_partition(addr, args.topic, start, end, deadline, progress)
        read_seconds = time.monotonic() - t1
        say("progress", args.pattern, read_records=records, read_seconds=f"{read_seconds:.2f}")
        time.sleep(max(0.0, min(held_from + args.hold_seconds - time.monotonic(), remaining(deadline))))
        closed = sum(peek_closed(c.sock) for c in stalled)
    finally:
        for c in stalled:
            c.close()
    return dict(
        produced=stats["ok"],
        nonreaders=len(stalled),
        requests_each=args.requests,
        closed_by_broker=closed,
        read_records=records,
        read_fetches=fetches,
        read_seconds=f"{read_seconds:.2f}",
        stopped="count",
    )


def consumer_subscription(topics):
    """ConsumerProtocolSubscription v0."""
    return i16(0) + array(topics, string) + blob(None)


def consumer_assignment():
    """ConsumerProtocolAssignment v0 with no partitions."""
    return i16(0) + i32(0) + blob(None)


def find_coordinator(conn, group, deadline):
    """FindCoordinator v1, retried while the offsets topic is created."""
    while True:
        r = conn.request(FIND_COORDINATOR, 1, string(group) + i8(0))
        r.i32()  # throttle
        error, message, node, host, port = r.i16(), r.string(), r.i32(), r.string(), r.i32()
        r.end()
        if error in (COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS) and remaining(deadline) > 0:
            time.sleep(0.05)
            continue
        expect(error, {NONE}, f"FindCoordinator {group} ({message})")
        if not is_loopback(host):
            raise ProtocolError(f"coordinator of {group} is {host}:{port}, not loopback")
        return node, host, port


def join_group(conn, group, member_id):
    """JoinGroup v4: (error, generation, protocol, leader, member_id, members)."""
    body = (
        string(group)
        + i32(10000)  # session timeout
        + i32(10000)  # rebalance timeout
        + string(member_id)
        + string("consumer")
        + array(["range"], lambda p: string(p) + blob(consumer_subscription([])))
    )
    r = conn.request(JOIN_GROUP, 4, body)
    r.i32()  # throttle
    error, generation, protocol, leader, member = r.i16(), r.i32(), r.string(), r.string(), r.string()
    members = r.array(lambda r: (r.string(), r.blob()))
    r.end()
    return error, generation, protocol, leader, member, members


def group_round(conn, group):
    """One member's whole life in a group: join twice (KIP-394), sync as
    leader, leave."""
    error, _, _, _, member, _ = join_group(conn, group, "")
    expect(error, {MEMBER_ID_REQUIRED}, f"first JoinGroup {group}")
    if not member:
        raise ProtocolError("MEMBER_ID_REQUIRED without a member id")
    error, generation, protocol, leader, got_member, members = join_group(conn, group, member)
    expect(error, {NONE}, f"JoinGroup {group}")
    if got_member != member or leader != member or protocol != "range":
        raise ProtocolError(
            f"JoinGroup {group}: member {got_member}, leader {leader}, protocol {protocol}"
        )
    if [m for m, _ in members] != [member]:
        raise ProtocolError(f"JoinGroup {group}: members {members}")
    assignment = consumer_assignment()
    body = (
        string(group)
        + i32(generation)
        + string(member)
        + array([member], lambda m: string(m) + blob(assignment))
    )
    r = conn.request(SYNC_GROUP, 1, body)
    r.i32()
    error, got = r.i16(), r.blob()
    r.end()
    expect(error, {NONE}, f"SyncGroup {group}")
    if got != assignment:
        raise ProtocolError(f"SyncGroup {group} answered assignment {got!r}")
    r = conn.request(LEAVE_GROUP, 1, string(group) + string(member))
    r.i32()
    error = r.i16()
    r.end()
    expect(error, {NONE}, f"LeaveGroup {group}")


def group_churn(args, addr, deadline):
    groups = [f"{args.group_prefix}-{i}" for i in range(args.groups)]
    progress = Progress(args.pattern)
    start = time.monotonic()
    rounds = 0
    with Conn(addr) as conn:
        for group in groups:
            find_coordinator(conn, group, deadline)
        while rounds < args.rounds and remaining(deadline) > 0:
            group_round(conn, groups[rounds % len(groups)])
            rounds += 1
            progress.tick(rounds=rounds)
    elapsed = time.monotonic() - start
    return dict(
        rounds=rounds,
        groups=args.groups,
        seconds=f"{elapsed:.2f}",
        rounds_per_s=f"{rounds / elapsed:.0f}",
        stopped="count" if rounds == args.rounds else "deadline",
    )


def topic_churn(args, addr, deadline):
    progress = Progress(args.pattern)
    start = time.monotonic()
    rounds = retries = 0
    with Conn(addr) as conn:
        while rounds < args.rounds and remaining(deadline) > 0:
            name = f"churn-{rounds % 10}"
            for attempt in range(args.create_attempts):
                error, message = create_topics(conn, [(name, 4)])[name]
                if error != TOPIC_ALREADY_EXISTS or attempt + 1 == args.create_attempts:
                    break
                retries += 1
                time.sleep(0.02)
            expect(error, {NONE}, f"CreateTopics {name} round {rounds} ({message})")
            error = delete_topics(conn, [name])[name]
            expect(error, {NONE}, f"DeleteTopics {name} round {rounds}")
            rounds += 1
            progress.tick(rounds=rounds, create_retries=retries)
    elapsed = time.monotonic() - start
    return dict(
        rounds=rounds,
        create_retries=retries,
        seconds=f"{elapsed:.2f}",
        rounds_per_s=f"{rounds / elapsed:.1f}",
        stopped="count" if rounds == args.rounds else "deadline",
    )


PATTERNS = {
    "long-polls": long_polls,
    "idle-connections": idle_connections,
    "half-frames": half_frames,
    "overload-producer": overload_producer,
    "nonreading-consumer": nonreading_consumer,
    "group-churn": group_churn,
    "topic-churn": topic_churn,
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bootstrap", help="HOST:PORT of the broker (loopback only)")
    sub = parser.add_subparsers(dest="pattern", required=True, metavar="PATTERN")

    def pattern(name, **options):
        p = sub.add_parser(name)
        p.add_argument("--max-seconds", type=float, default=120.0, help="wall-clock deadline")
        for option, (kind, default) in options.items():
            p.add_argument("--" + option.replace("_", "-"), type=kind, default=default)

    pattern("long-polls", topic=(str, "idle"), waits=(int, 100_000), consumers=(int, 1))
    pattern("idle-connections", connections=(int, 10_000), rounds=(int, 3), hold_seconds=(float, 1.0))
    pattern(
        "half-frames",
        connections=(int, 200),
        hold_seconds=(float, 10.0),
        probes=(int, 8),
        probe_seconds=(float, 5.0),
    )
    pattern(
        "overload-producer",
        topic=(str, "overload"),
        producers=(int, 4),
        partitions=(int, 16),
        seconds=(float, 20.0),
        queue_kbytes=(int, 256 * 1024),
    )
    pattern(
        "nonreading-consumer",
        topic=(str, "nonreading"),
        mib=(int, 64),
        connections=(int, 20),
        requests=(int, 8),
        hold_seconds=(float, 10.0),
    )
    pattern("group-churn", rounds=(int, 10_000), groups=(int, 10), group_prefix=(str, "churn-group"))
    pattern("topic-churn", rounds=(int, 1000), create_attempts=(int, 50))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    addr = loopback_address(args.bootstrap)
    faulthandler.dump_traceback_later(args.max_seconds + WATCHDOG_GRACE_S, exit=True)
    deadline = time.monotonic() + args.max_seconds
    say("start", args.pattern, bootstrap=args.bootstrap, max_seconds=args.max_seconds)
    counts = PATTERNS[args.pattern](args, addr, deadline)
    faulthandler.cancel_dump_traceback_later()
    say("done", args.pattern, **counts)


if __name__ == "__main__":
    main()
