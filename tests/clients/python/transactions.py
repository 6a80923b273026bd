#!/usr/bin/env python3
"""Transaction scenarios with confluent-kafka (librdkafka's transactional
producer, read_committed and read_uncommitted consumers).

Usage: python3 transactions.py SCENARIO BOOTSTRAP PREFIX

  commit-abort   6 transactions over 2 partitions, committed and aborted in
                 turn: read_committed sees exactly the committed records,
                 read_uncommitted every record; the offsets of both, and
                 where each consumer ends (markers take an offset each)
  fence          a second producer with the same transactional.id fences
                 the first: the first one's open transaction is aborted,
                 its commit fails with a fatal error; only the second one's
                 records are committed
  timeout        a transaction left open past its transaction.timeout.ms is
                 aborted by the coordinator: read_committed moves past it,
                 and the producer's late commit fails
  lso            while a transaction is open, a read_committed consumer's
                 end offset is its first offset (the last stable offset)
                 and a read_uncommitted one's the high watermark; both meet
                 at the commit
  kill-before    (with kill-after, around a broker SIGKILL and restart) two
                 transactions committed, one between them left open
  kill-after     the last commit before the kill is complete after the
                 restart; the open one is aborted by its producer's next
                 instance; read_committed reads both committed records only
  hold-open      (for kafka-transactions.sh) one transaction committed and
                 one left open over two partitions until stdin closes
  commit-once    (for the id's expiry) one transaction committed, then idle
  ends           (for kafka-transactions.sh) the end offsets of hold-open's
                 partitions under both isolation levels
  rpw            read-process-write: input records are copied to an output
                 topic in transactions that commit the group's offsets too
                 (send_offsets_to_transaction); an aborted round commits
                 neither; every input is in the output exactly once and the
                 group's committed offset is the input's end
  segments       (sluice only: Kafka 4 refuses segments this small) 40
                 transactions over a topic of 8 KiB segments, every third
                 aborted: read_committed reads exactly the committed
                 records across the sealed segments' transaction indexes
  segments-read  segments' reads again, writing nothing (after a restart)

Each scenario prints deterministic lines on stdout (no names given as
arguments, no timings), compared with what Apache Kafka printed
(expected/txn-SCENARIO.txt); diagnostics go to stderr. A failed check
raises. Every wait has a deadline.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

WAIT = 60  # seconds, the longest any single wait may take


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def out(*args):
    print(*args, flush=True)


def create(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(WAIT)
    deadline = time.time() + WAIT
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} did not appear")


def producer(bootstrap, txn_id, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
    }
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(WAIT)
    return p


def consumer(bootstrap, isolation, group=None):
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or "unused",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )


def read_all(bootstrap, topic, partitions, isolation):
    """Every record a consumer of `isolation` reads from the start, by
    partition: (offset, value); and each partition's position at its end."""
    c = consumer(bootstrap, isolation)
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    at_eof = set()
    deadline = time.time() + WAIT
    while len(at_eof) < partitions:
        if time.time() > deadline:
            raise RuntimeError(f"{isolation}: no end of {topic} within {WAIT} s")
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:  # _PARTITION_EOF
                at_eof.add(m.partition())
                continue
            raise KafkaException(m.error())
        at_eof.discard(m.partition())
        got[m.partition()].append((m.offset(), m.value().decode()))
    positions = c.position([TopicPartition(topic, p) for p in range(partitions)])
    c.close()
    return got, {tp.partition: tp.offset for tp in positions}


def settle(bootstrap, topic, partitions):
    """Waits until no transaction is open on the topic: the read_committed
    end (the last stable offset) meets the high watermark on every
    partition. EndTxn answers once the commit is decided; the markers that
    move the LSO are written after the answer, on Kafka as on sluice."""
    deadline = time.time() + WAIT
    while True:
        committed = end_offsets(bootstrap, topic, partitions, "read_committed")
        uncommitted = end_offsets(bootstrap, topic, partitions, "read_uncommitted")
        if committed == uncommitted:
            return
        if time.time() > deadline:
            raise RuntimeError(f"{topic}: LSO {committed} never met the end {uncommitted}")
        time.sleep(0.1)


def show_reads(bootstrap, topic, partitions):
    settle(bootstrap, topic, partitions)
    for isolation in ("read_committed", "read_uncommitted"):
        got, positions = read_all(bootstrap, topic, partitions, isolation)
        for p in range(partitions):
            records = " ".join(f"{o}:{v}" for o, v in got[p])
            out(f"{isolation} p{p}: {records} | ends at {positions[p]}")


def end_offsets(bootstrap, topic, partitions, isolation):
    c = consumer(bootstrap, isolation)
    ends = []
    for p in range(partitions):
        _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=WAIT, cached=False)
        ends.append(high)
    c.close()
    return ends


def error_name(e):
    err = e.args[0]
    return f"{err.name()} fatal={err.fatal()} abortable={err.txn_requires_abort()}"


def commit_abort(bootstrap, prefix):
    topic = prefix + "-in"
    create(bootstrap, topic, 2)
    p = producer(bootstrap, prefix + "-tx")
    for i in range(6):
        p.begin_transaction()
        for j in range(3):
            p.produce(topic, value=f"t{i}-r{j}".encode(), partition=j % 2)
        if i % 2 == 0:
            p.commit_transaction(WAIT)
            out(f"transaction {i} committed")
        else:
            # Sent before the abort, so the aborted records are in the log.
            p.flush(WAIT)
            p.abort_transaction(WAIT)
            out(f"transaction {i} aborted")
    show_reads(bootstrap, topic, 2)
    out("read_committed ends", end_offsets(bootstrap, topic, 2, "read_committed"))
    out("read_uncommitted ends", end_offsets(bootstrap, topic, 2, "read_uncommitted"))


def fence(bootstrap, prefix):
    topic = prefix + "-in"
    create(bootstrap, topic, 1)
    first = producer(bootstrap, prefix + "-tx")
    first.begin_transaction()
    first.produce(topic, value=b"first-1", partition=0)
    first.flush(WAIT)
    second = producer(bootstrap, prefix + "-tx")
    out("second producer initialised")
    second.begin_transaction()
    second.produce(topic, value=b"second-1", partition=0)
    second.commit_transaction(WAIT)
    out("second producer committed")
    try:
        first.commit_transaction(WAIT)
        out("first producer committed (unexpected)")
    except KafkaException as e:
        out("first producer's commit failed:", error_name(e))
    show_reads(bootstrap, topic, 1)


def timeout(bootstrap, prefix):
    topic = prefix + "-in"
    create(bootstrap, topic, 1)
    p = producer(bootstrap, prefix + "-tx", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce(topic, value=b"left-open", partition=0)
    p.flush(WAIT)
    out("read_committed end while open", end_offsets(bootstrap, topic, 1, "read_committed"))
    # The coordinator aborts it (Kafka looks for timed-out transactions
    # every transaction.abort.timed.out.transaction.cleanup.interval.ms).
    deadline = time.time() + WAIT
    while end_offsets(bootstrap, topic, 1, "read_committed") != [2]:
        if time.time() > deadline:
            raise RuntimeError("the open transaction was not aborted")
        time.sleep(0.5)
    out("read_committed end after the timeout", end_offsets(bootstrap, topic, 1, "read_committed"))
    try:
        p.commit_transaction(WAIT)
        out("late commit succeeded (unexpected)")
    except KafkaException as e:
        out("late commit failed:", error_name(e))
    show_reads(bootstrap, topic, 1)


def lso(bootstrap, prefix):
    topic = prefix + "-in"
    create(bootstrap, topic, 1)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(3):
        plain.produce(topic, value=f"plain-{i}".encode(), partition=0)
    plain.flush(WAIT)
    p = producer(bootstrap, prefix + "-tx")
    p.begin_transaction()
    for i in range(2):
        p.produce(topic, value=f"txn-{i}".encode(), partition=0)
    p.flush(WAIT)
    out("open: read_committed end", end_offsets(bootstrap, topic, 1, "read_committed"))
    out("open: read_uncommitted end", end_offsets(bootstrap, topic, 1, "read_uncommitted"))
    got, positions = read_all(bootstrap, topic, 1, "read_committed")
    out("open: read_committed reads", [v for _, v in got[0]], "ends at", positions[0])
    p.commit_transaction(WAIT)
    settle(bootstrap, topic, 1)
    out("committed: read_committed end", end_offsets(bootstrap, topic, 1, "read_committed"))
    out("committed: read_uncommitted end", end_offsets(bootstrap, topic, 1, "read_uncommitted"))
    show_reads(bootstrap, topic, 1)


def rpw_round(bootstrap, prefix, count, commit):
    """One process step: a group member reads `count` inputs (from the
    group's committed offset) and copies them to the output in one
    transaction with the offsets; commits or aborts it."""
    src, dst, group = prefix + "-in", prefix + "-out", prefix + "-g"
    c = consumer(bootstrap, "read_committed", group)
    c.assign([TopicPartition(src, 0)])
    p = producer(bootstrap, prefix + "-tx")
    p.begin_transaction()
    taken = []
    deadline = time.time() + WAIT
    while len(taken) < count:
        if time.time() > deadline:
            raise RuntimeError("inputs did not arrive")
        m = c.poll(0.2)
        if m is None or (m.error() and m.error().code() == -191):
            continue
        if m.error():
            raise KafkaException(m.error())
        taken.append(m.value().decode())
        p.produce(dst, value=("out-" + m.value().decode()).encode(), partition=0)
    p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), WAIT)
    if commit:
        p.commit_transaction(WAIT)
    else:
        p.flush(WAIT)
        p.abort_transaction(WAIT)
    out(f"{'committed' if commit else 'aborted'} a round of", " ".join(taken))
    c.close()


def rpw(bootstrap, prefix):
    src, dst, group = prefix + "-in", prefix + "-out", prefix + "-g"
    create(bootstrap, src, 1)
    create(bootstrap, dst, 1)
    plain = Producer({"bootstrap.servers": bootstrap})
    for i in range(10):
        plain.produce(src, value=f"in-{i}".encode(), partition=0)
    plain.flush(WAIT)
    rpw_round(bootstrap, prefix, 4, True)
    rpw_round(bootstrap, prefix, 3, False)
    rpw_round(bootstrap, prefix, 6, True)
    got, positions = read_all(bootstrap, dst, 1, "read_committed")
    out("output:", " ".join(v for _, v in got[0]))
    c = consumer(bootstrap, "read_committed", group)
    committed = c.committed([TopicPartition(src, 0)], timeout=WAIT)
    out("group's committed offset:", committed[0].offset)
    c.close()


def kill_before(bootstrap, prefix):
    """Phase one of a broker SIGKILL (the test kills it after this exits):
    one transaction committed, a second one left open with its records
    written, and a third committed right before the kill."""
    topic = prefix + "-in"
    create(bootstrap, topic, 1)
    done = producer(bootstrap, prefix + "-done")
    done.begin_transaction()
    done.produce(topic, value=b"committed-1", partition=0)
    done.commit_transaction(WAIT)
    left = producer(bootstrap, prefix + "-open")
    left.begin_transaction()
    left.produce(topic, value=b"left-open", partition=0)
    left.flush(WAIT)
    done.begin_transaction()
    done.produce(topic, value=b"committed-2", partition=0)
    done.commit_transaction(WAIT)
    out("before the kill: committed twice, one transaction left open")


def kill_after(bootstrap, prefix):
    """Phase two, after the broker restarted: the transaction committed
    just before the kill is complete, and a new instance of the open one's
    producer aborts it (so read_committed moves past it)."""
    topic = prefix + "-in"
    producer(bootstrap, prefix + "-open")
    out("the open transaction's producer started again")
    deadline = time.time() + WAIT
    while True:
        got, positions = read_all(bootstrap, topic, 1, "read_committed")
        values = [v for _, v in got[0]]
        if values == ["committed-1", "committed-2"] and positions[0] == 6:
            break
        if time.time() > deadline:
            raise RuntimeError(f"read_committed got {values} ending at {positions[0]}")
        time.sleep(0.2)
    show_reads(bootstrap, topic, 1)


def hold_open(bootstrap, prefix):
    """For the transaction tools: PREFIX-done commits a transaction on
    PREFIX-t (2 partitions), then PREFIX-open opens one over both
    partitions and keeps it open until stdin closes."""
    topic = prefix + "-t"
    create(bootstrap, topic, 2)
    done = producer(bootstrap, prefix + "-done")
    done.begin_transaction()
    done.produce(topic, value=b"x", partition=0)
    done.commit_transaction(WAIT)
    p = producer(bootstrap, prefix + "-open")
    p.begin_transaction()
    p.produce(topic, value=b"a", partition=0)
    p.produce(topic, value=b"b", partition=1)
    p.flush(WAIT)
    out("open")
    sys.stdin.read()


def commit_once(bootstrap, prefix):
    """For transactional.id.expiration.ms: PREFIX-tx commits one
    transaction on PREFIX-t and stays idle."""
    topic = prefix + "-t"
    create(bootstrap, topic, 1)
    p = producer(bootstrap, prefix + "-tx")
    p.begin_transaction()
    p.produce(topic, value=b"once", partition=0)
    p.commit_transaction(WAIT)
    out("committed")


def ends(bootstrap, prefix):
    """For the transaction tools: each partition of PREFIX-t's end offset
    under read_committed (its last stable offset) and read_uncommitted."""
    topic = prefix + "-t"
    committed = end_offsets(bootstrap, topic, 2, "read_committed")
    uncommitted = end_offsets(bootstrap, topic, 2, "read_uncommitted")
    for p in range(2):
        out(f"p{p}: read_committed end {committed[p]}, read_uncommitted end {uncommitted[p]}")


SEGMENT_TXNS = 40


def segment_values(i):
    return [f"t{i}-r{j}-" + "x" * 300 for j in range(5)]


def segments(bootstrap, prefix, read_only=False):
    """Many transactions over many small segments, every third aborted;
    read_committed must read exactly the committed records, in order,
    whether they come from the active segment or from sealed ones."""
    topic = prefix + "-seg"
    if not read_only:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        new = NewTopic(topic, 1, 1, config={"segment.bytes": "8192"})
        for f in admin.create_topics([new]).values():
            f.result(WAIT)
        p = producer(bootstrap, prefix + "-seg-tx")
        for i in range(SEGMENT_TXNS):
            p.begin_transaction()
            for v in segment_values(i):
                p.produce(topic, value=v.encode(), partition=0)
            if i % 3 == 1:
                p.flush(WAIT)
                p.abort_transaction(WAIT)
            else:
                p.commit_transaction(WAIT)
        out(f"{SEGMENT_TXNS} transactions written")
    settle(bootstrap, topic, 1)
    committed = [v for i in range(SEGMENT_TXNS) if i % 3 != 1 for v in segment_values(i)]
    for isolation in ("read_committed", "read_uncommitted"):
        got, _ = read_all(bootstrap, topic, 1, isolation)
        values = [v for _, v in got[0]]
        want = committed if isolation == "read_committed" else None
        exact = values == want if want is not None else len(values) == 5 * SEGMENT_TXNS
        out(f"{isolation}: {len(values)} records, as expected: {exact}")


def segments_read(bootstrap, prefix):
    segments(bootstrap, prefix, read_only=True)


SCENARIOS = {
    "segments": segments,
    "segments-read": segments_read,
    "commit-once": commit_once,
    "ends": ends,
    "hold-open": hold_open,
    "kill-before": kill_before,
    "kill-after": kill_after,
    "commit-abort": commit_abort,
    "fence": fence,
    "timeout": timeout,
    "lso": lso,
    "rpw": rpw,
}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in SCENARIOS:
        sys.exit(__doc__)
    SCENARIOS[sys.argv[1]](sys.argv[2], sys.argv[3])
