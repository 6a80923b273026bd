#!/usr/bin/env python3
"""Share-group scenarios (KIP-932, queues for Kafka) with confluent-kafka's
ShareConsumer (librdkafka's share consumer: ShareGroupHeartbeat, ShareFetch,
ShareAcknowledge).

Usage: python3 share_groups.py SCENARIO BOOTSTRAP TOPIC GROUP

Each scenario creates TOPIC (1 partition), sets the share-group configs of
GROUP it needs with IncrementalAlterConfigs on the GROUP config resource
(always share.auto.offset.reset=earliest, so records produced before the
group's first member joins are delivered), produces records with known
values and prints what it saw:

  share-four     4 members (a thread each, implicit acknowledgement, at
                 most 5 records a poll): first each gets a warm-up record
                 (produced one at a time; a member that has one stops
                 polling until all 4 have one, so all 4 are in the group
                 and fetching), then 200 records are produced, each in a
                 batch of its own, and all 4 poll them (50 ms of
                 "processing" after every non-empty poll): every record is
                 consumed, each is delivered exactly once (delivery count
                 1), no record is held by two members at once (a member
                 holds a record from the poll that returned it until its
                 next poll or commit starts), and every member gets some
                 of the 200; then a new member gets only the record
                 produced after them (all were accepted, the last polls'
                 records by commit_sync)
  share-release  explicit acknowledgement: 10 records; the even offsets
                 are accepted, the odd ones RELEASEd, and only the odd ones
                 come back, with delivery count 2; RELEASEd again they come
                 back with delivery count 3, are accepted, and then only
                 the next record produced is delivered
  share-reject   explicit acknowledgement: 10 records; offsets 2, 5 and 8
                 are REJECTed, the rest accepted; after that member closes,
                 a second member gets only the record produced after them
                 (rejected records are archived, never redelivered); then
                 kafka-share-groups.sh --describe --state and --offsets
                 (scripts/kafka-oracle tool, masked): the group is Empty
                 with 0 members, its partition's lag 0
  share-kill     a member process (share-kill-victim) acquires 10 records
                 and is SIGKILLed before acknowledging them; a second member
                 gets them again, with delivery count 2, and the 10 produced
                 after the kill with delivery count 1. (Kafka releases the
                 records when the killed member's connection closes, before
                 their locks expire; a broker that waits for the locks'
                 expiry prints the same.)
  share-stall    the same with the victim SIGSTOPped instead (SIGKILLed at
                 the end): its connections stay open, so only the expiry of
                 the locks (the group's share.record.lock.duration.ms=3000)
                 frees the records; the second member gets them with
                 delivery count 2, not sooner than 2 s after the victim had
                 them
  share-poison   share.delivery.count.limit=3: one record ("poison") is
                 RELEASEd every time it is delivered (the acknowledgements
                 ride on the next ShareFetch, no commit_sync), the others
                 are accepted; it is delivered 3 times (counts 1, 2, 3) and
                 then never again, and the records produced after it are
                 still delivered

  share-reset    kafka-share-groups.sh --reset-offsets --to-earliest
                 (refused while the group has a member) and
                 --delete-offsets: the records accepted before come back
                 as new, then again after the state is deleted

  share-dlq      dead-letter queue (KIP-1191): TOPIC has 3 partitions,
                 dlq.TOPIC 2 (created with the topic config
                 errors.deadletterqueue.group.enable=true, without which
                 Kafka writes nothing to it); the group has
                 errors.deadletterqueue.topic.name=dlq.TOPIC and
                 share.delivery.count.limit=2. 5 records (key, value, one
                 header) to each partition; one member REJECTs offset 1 of
                 each, RELEASEs partition 2's offset 3 at every delivery (it
                 is delivered twice, then archived at the limit) and
                 accepts the rest. Then the whole DLQ topic is read (a
                 plain consumer, assign()): 4 records, source partition P
                 in DLQ partition P % 2, without the source's key, value and
                 headers, with the __dlq.errors.* headers (topic,
                 partition, offset, group, delivery count: 1 when
                 rejected, 2 at the limit; message); they are printed per
                 DLQ partition in their source records' order (from
                 different source partitions they are written in an order
                 up to timing), then the count per DLQ partition, their
                 timestamp type and whether the timestamps are plausible;
                 then a second member gets only the record produced after
                 them
  share-dlq-copy the same with 1 partition each and
                 errors.deadletterqueue.copy.record.enable=true: 2 of 5
                 records (keys, one without, and headers) are REJECTed; the
                 DLQ records carry their keys and values, not their
                 headers
  share-dlq-deleted
                 the same as share-dlq-copy, but the records are deleted
                 while acquired: a member's single poll gets 4 records,
                 then DeleteRecords moves TOPIC's log start to offset 2;
                 the member rejects offsets 0 and 2 and accepts 1 and 3;
                 its commit's result per partition, then the DLQ topic
                 (what a rejected record whose source is gone becomes)
  share-dlq-configs
                 errors.deadletterqueue.topic.name set on the group (each
                 accepted or refused with INVALID_CONFIG: "__dlq",
                 "other-topic", "dlq.ok", "") and
                 errors.deadletterqueue.copy.record.enable=maybe; then the
                 group's DLQ topic is in turn one that does not exist, one
                 without the dlq. prefix, one without
                 errors.deadletterqueue.group.enable=true, and that one with
                 it: a member REJECTs a record each time, its commit_sync
                 succeeds, and only the last DLQ gets a record (Kafka
                 archives the rejected record regardless, creates no
                 topic, and checks the prefix only when it writes); a next
                 member gets only the records produced after them

  share-many     four share groups on one topic, one after the other,
                 each accepting the 5 records; then each gets only the
                 one record produced after that

  share-read-committed
                 share.isolation.level: GROUP-rc has read_committed,
                 GROUP-ru the default read_uncommitted. A transactional
                 producer commits c-0..c-2, aborts a-0..a-2 and commits
                 c-3..c-5; a plain producer writes p-0; then a fourth
                 transaction writes o-0 and o-1 and stays open. A GROUP-rc
                 member (explicit ACCEPT, commit_sync after every poll)
                 gets c-0..c-5 and p-0 (their offsets: the control markers
                 take one each and are never delivered), neither the
                 aborted records nor the open transaction's; once that is
                 committed, the same member gets o-0 and o-1 and nothing
                 else; then a GROUP-ru member gets every record, the
                 aborted ones too. (Kafka's ShareFetch for GROUP-rc
                 carries the aborted batch but does not acquire its
                 records: it archives them; it acquires the markers'
                 offsets, which librdkafka acknowledges as GAP.)

  share-durable-before, share-durable-after
                 the halves around a broker SIGKILL and restart (run by
                 tests/share_groups.rs against sluice): acknowledged
                 records stay acknowledged, acquired ones come back

  share-dlq-durable-before, share-dlq-durable-after
                 the same with a dead-letter topic: records rejected
                 before the kill and those rejected or past the delivery
                 limit after it are each in dlq.TOPIC once

  share-cluster-before, share-cluster-after
                 the halves around a rolling restart of a 3-broker cluster
                 whose __share_group_state has one partition (run by
                 tests/share_groups.rs): TOPIC has 3 partitions, one led
                 by each broker, so two of its share partitions keep their
                 state on another broker. 4 records to each partition; a
                 member accepts all 12 but releases p1-o2 once (it comes
                 back with delivery count 2); after every broker was
                 restarted, a new member gets only the record produced to
                 each partition since

  share-moves-1, share-moves-2, share-moves-3
                 the thirds around two leadership moves in a 3-broker
                 cluster (run by tests/share_groups.rs): TOPIC has one
                 partition on brokers 1, 2 and 3 (led by 1); m-0 and m-1
                 are produced and a member accepts them; then, led by 2,
                 m-2 and m-3 likewise; then, led by 1 again, a member gets
                 only m-4, produced then (1 must not serve the share
                 partition it held before 2 led)

  share-cluster-dlq
                 in a 3-broker cluster (run by tests/share_groups.rs):
                 TOPIC on broker 1 alone, dlq.TOPIC on broker 2 alone
                 (copying records); a member rejects c-1 of c-0..c-2 and
                 accepts the rest; the dead letter is on broker 2, with
                 its key and value

  share-kill-victim   (internal) the member share-kill kills (and
                 share-stall stops): polls until it has records, prints
                 them, then waits without acknowledging

The broker must accept share.record.lock.duration.ms=3000 as a group
config: Kafka's floor group.share.min.record.lock.duration.ms (15 s by
default) has to be lowered to at most 3000 (share_oracle.sh starts Kafka
with 1000). share.delivery.count.limit=3 is above Kafka's default floor
(group.share.min.delivery.count.limit=2). Joining is faster with a short
group.share.heartbeat.interval.ms (share_oracle.sh: 1000); no line depends
on it. The share-dlq scenarios need dead-letter queues (Kafka: the feature
share.version=2, finalized by default from 4.4) with Kafka's defaults for
the DLQ topic prefix (errors.deadletterqueue.topic.name.prefix=dlq.) and
errors.deadletterqueue.auto.create.topics.enable=false.

Each scenario prints deterministic lines on stdout (no names given as
arguments, no member ids, no timings), compared with what Apache Kafka
printed (expected/share-*.txt); diagnostics go to stderr, and with
SHARE_DEBUG=CONTEXTS (e.g. protocol) librdkafka's debug log too. A failed check
raises, so the process exits non-zero with a traceback. Every wait has a
deadline, and the victim process is killed before share-kill and
share-stall return.
"""
import os
import select
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    AcknowledgeType,
    Consumer,
    KafkaException,
    Producer,
    ShareConsumer,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

WAIT = 60  # seconds, the longest any single wait may take
QUIET = 1.0  # seconds a member keeps polling after the last record it expects
LOCK_MS = 3000  # share-kill's and share-stall's share.record.lock.duration.ms
DELIVERY_LIMIT = 3  # share-poison's share.delivery.count.limit
DLQ_TOPIC_CONFIG = {"errors.deadletterqueue.group.enable": "true"}  # a topic's opt-in to be a share group's DLQ
DLQ_SETTLE = 3.0  # seconds after a commit within which its DLQ record would have been written
VICTIM_LIFETIME = 120  # seconds: the victim process never outlives this
DEBUG = os.environ.get("SHARE_DEBUG")  # e.g. "protocol": librdkafka's debug contexts
ORACLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts", "kafka-oracle")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def out(*args):
    print(*args, flush=True)


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def client_conf(bootstrap, **extra):
    conf = {"bootstrap.servers": bootstrap}
    if DEBUG:
        conf["debug"] = DEBUG
    conf.update(extra)
    return conf


def create(bootstrap, topic, partitions=1, config=None):
    """Creates TOPIC with `partitions` partitions (and the topic configs
    `config`) and waits until every partition has a leader."""
    admin = AdminClient(client_conf(bootstrap))
    for f in admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})]).values():
        f.result(WAIT)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        t = admin.list_topics(topic, timeout=10).topics.get(topic)
        if (t is not None and t.error is None and len(t.partitions) == partitions
                and all(p.leader >= 0 for p in t.partitions.values())):
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} did not appear")


def set_group(bootstrap, group, configs, mask=lambda v: v):
    """Sets GROUP's configs (IncrementalAlterConfigs, SET) and prints them
    (each value through `mask`)."""
    admin = AdminClient(client_conf(bootstrap))
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()]
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=entries)
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(WAIT)
    out("group configs set: " + " ".join(f"{k}={mask(v)}" for k, v in configs.items()))


def produce(bootstrap, topic, values, batch_each=False):
    """Produces `values` to partition 0 in order and waits for every
    delivery report; returns their offsets. batch_each: one record a batch
    (so a ShareFetch can hand out fewer records than were produced)."""
    conf = client_conf(bootstrap, **{"linger.ms": 5, "enable.idempotence": True})
    if batch_each:
        conf["batch.num.messages"] = 1
    p = Producer(conf)
    offsets = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            offsets[msg.value().decode()] = msg.offset()

    for v in values:
        p.produce(topic, value=v.encode(), partition=0, on_delivery=report)
    check(p.flush(WAIT) == 0, "produce: records left unsent")
    check(not errors, f"produce: {errors}")
    return [offsets[v] for v in values]


def share_consumer(bootstrap, group, topic, explicit, **extra):
    conf = client_conf(
        bootstrap,
        **{
            "group.id": group,
            "share.acknowledgement.mode": "explicit" if explicit else "implicit",
        },
    )
    conf.update(extra)
    c = ShareConsumer(conf)
    c.subscribe([topic])
    return c


def records(c, timeout):
    """One poll of at most `timeout` seconds: its messages; an error raises."""
    got = []
    for m in c.poll(timeout):
        if m.error():
            raise KafkaException(m.error())
        got.append(m)
    return got


def commit(c):
    """commit_sync; every partition's result must be a success."""
    result = c.commit_sync(WAIT)
    for tp, err in result.items():
        check(err is None, f"commit_sync {tp.topic} [{tp.partition}]: {err}")


def consume(c, until, decide=None, quiet=QUIET, commit_each=True):
    """Polls `c` until until(got) holds, then for `quiet` seconds more;
    returns every record seen, as (offset, value, delivery count), in
    delivery order. In explicit mode decide(offset, value, count) gives
    each record's AcknowledgeType; commit_each: commit_sync after every
    poll that returned records (else the acknowledgements ride on the next
    poll's ShareFetch)."""
    got = []
    deadline = time.monotonic() + WAIT
    done_at = None
    while True:
        now = time.monotonic()
        if done_at is None and until(got):
            done_at = now
        if done_at is not None and now - done_at >= quiet:
            return got
        if now > deadline:
            raise TimeoutError(f"no end within {WAIT} s; got {show(got)}")
        batch = records(c, 0.2)
        for m in batch:
            rec = (m.offset(), m.value().decode(), m.delivery_count())
            got.append(rec)
            if decide is not None:
                c.acknowledge(m, decide(*rec))
        if batch and decide is not None and commit_each:
            commit(c)


def ranges(offsets):
    """Sorted offsets as "0-9 12 14-15"."""
    offsets = sorted(offsets)
    parts = []
    i = 0
    while i < len(offsets):
        j = i
        while j + 1 < len(offsets) and offsets[j + 1] == offsets[j] + 1:
            j += 1
        parts.append(str(offsets[i]) if i == j else f"{offsets[i]}-{offsets[j]}")
        i = j + 1
    return " ".join(parts) if parts else "none"


def show(got):
    """Records grouped by delivery count: "offsets 0-9 (delivery count 1)"."""
    by_count = {}
    for o, _, n in got:
        by_count.setdefault(n, []).append(o)
    return ", ".join(f"offsets {ranges(by_count[n])} (delivery count {n})" for n in sorted(by_count, key=str)) or "nothing"


def next_only(bootstrap, topic, group, label, after):
    """Produces one more record (`after`); a new member of GROUP must get
    it, and nothing else within QUIET seconds after it."""
    [offset] = produce(bootstrap, topic, [after])
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: any(v == after for _, v, _ in got), lambda *r: AcknowledgeType.ACCEPT)
        out(f"{label}: " + " ".join(f"{v} (delivery count {n})" for _, v, n in got))
        check(got == [(offset, after, 1)], f"{label}: expected only {after} at {offset}, got {got}")
    finally:
        c.close()


# --- scenarios


def four(bootstrap, topic, group):
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})

    lock = threading.Lock()
    ready = [threading.Event() for _ in range(4)]
    gate = threading.Event()
    done = threading.Event()
    main = set()  # the 200 records' offsets, filled before the gate opens
    seen = {}  # offset -> value, every record any member got
    holds = []  # (offset, member, delivery count, from, until)
    counts = [0] * 4  # the 200 records' deliveries, by member
    failures = []

    def member(k):
        try:
            c = share_consumer(bootstrap, group, topic, explicit=False, **{"max.poll.records": 5})
            try:
                held = []  # (offset, delivery count, since) from the last poll
                deadline = time.monotonic() + 2 * WAIT

                def poll_once():
                    nonlocal held
                    check(time.monotonic() < deadline, f"member {k}: no end within {2 * WAIT} s")
                    start = time.monotonic()  # the last poll's records are accepted from here
                    batch = records(c, 0.2)
                    now = time.monotonic()
                    with lock:
                        holds.extend((o, k, n, since, start) for o, n, since in held)
                        held = [(m.offset(), m.delivery_count(), now) for m in batch]
                        for m in batch:
                            seen[m.offset()] = m.value().decode()
                            counts[k] += m.offset() in main
                        if main and main <= seen.keys():
                            done.set()
                    return batch

                # A warm-up record: this member is in the group and has the
                # partition. It stops polling (holding the record) until
                # every member is there, so the next warm-up goes to another.
                while not poll_once():
                    check(not done.is_set(), "given up")
                ready[k].set()
                check(gate.wait(WAIT), f"member {k}: the gate never opened")
                while not done.is_set():
                    if poll_once():
                        time.sleep(0.05)  # processing: lets the other members fetch too
                start = time.monotonic()
                commit(c)  # accepts the last poll's records
                with lock:
                    holds.extend((o, k, n, since, start) for o, n, since in held)
            finally:
                c.close()
        except Exception as e:  # reported by the main thread
            failures.append(f"member {k}: {e!r}")
            done.set()

    threads = [threading.Thread(target=member, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    ok = False
    try:
        # One warm-up record at a time, until each member has one. (Another
        # one too after 2 s without a taker: not needed with Kafka.)
        warmups, last = 0, 0.0
        deadline = time.monotonic() + WAIT
        while not all(r.is_set() for r in ready):
            check(not failures, "; ".join(failures))
            check(time.monotonic() < deadline, f"members ready within {WAIT} s: {[r.is_set() for r in ready]}")
            with lock:
                taken = sum(1 for v in seen.values() if v.startswith("w-"))
            if taken == warmups or time.monotonic() - last > 2:
                produce(bootstrap, topic, [f"w-{warmups}"])
                warmups, last = warmups + 1, time.monotonic()
            time.sleep(0.02)
        log(f"{warmups} warm-up records")
        out("4 members, each holding a warm-up record")
        values = [f"r-{i:03d}" for i in range(200)]
        offsets = produce(bootstrap, topic, values, batch_each=True)
        out(f"produced {len(values)} records, one a batch")
        main.update(offsets)
        ok = True
    finally:
        if not ok:
            done.set()
        gate.set()
    for t in threads:
        t.join(WAIT + 30)
    check(not any(t.is_alive() for t in threads), "a member thread did not end")
    check(not failures, "; ".join(failures))
    log(f"records per member: {counts}")

    out(f"consumed {sum(1 for o in seen if o in main)} distinct records, every produced one exactly: "
        f"{ {o: v for o, v in seen.items() if o in main} == dict(zip(offsets, values))}")
    out(f"deliveries {sum(1 for h in holds if h[0] in main)}, each record delivered once (warm-ups too): "
        f"{sorted(o for o, *_ in holds) == sorted(seen)}")
    main_holds = [h for h in holds if h[0] in main]
    out("their delivery counts: " + " ".join(f"{n}x{sum(1 for h in main_holds if h[2] == n)}"
                                             for n in sorted({h[2] for h in main_holds})))
    overlap = []
    by_offset = {}
    for h in holds:
        by_offset.setdefault(h[0], []).append(h)
    for o, hs in by_offset.items():
        hs.sort(key=lambda h: h[3])
        for a, b in zip(hs, hs[1:]):
            if a[1] != b[1] and b[3] < a[4]:
                overlap.append(o)
    out(f"no record held by two members at once: {not overlap}")
    out(f"all members got some of the 200: {all(n > 0 for n in counts)}")
    next_only(bootstrap, topic, group, "a new member then gets", "r-200")


def release(bootstrap, topic, group):
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    values = [f"r-{i:03d}" for i in range(10)]
    offsets = produce(bootstrap, topic, values)
    out(f"produced {len(values)} records")
    odd = offsets[1::2]
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        # quiet=0: polling on would deliver the released records again.
        got = consume(c, lambda got: len(got) >= 10,
                      lambda o, v, n: AcknowledgeType.RELEASE if o in odd else AcknowledgeType.ACCEPT, quiet=0)
        out(f"delivery 1: {show(got)}")
        out(f"accepted the even offsets, released {ranges(odd)}")
        check(sorted(o for o, _, _ in got) == offsets, f"first delivery {got}")
        got = consume(c, lambda got: len(got) >= len(odd), lambda *r: AcknowledgeType.RELEASE, quiet=0)
        out(f"delivery 2: {show(got)}")
        out(f"released {ranges(o for o, _, _ in got)} again")
        got = consume(c, lambda got: len(got) >= len(odd), lambda *r: AcknowledgeType.ACCEPT)
        out(f"delivery 3: {show(got)}")
        out(f"accepted {ranges(o for o, _, _ in got)}")
    finally:
        c.close()
    next_only(bootstrap, topic, group, "then a new member gets", "r-010")


def reject(bootstrap, topic, group):
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    values = [f"r-{i:03d}" for i in range(10)]
    offsets = produce(bootstrap, topic, values)
    out(f"produced {len(values)} records")
    bad = [offsets[2], offsets[5], offsets[8]]
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= 10,
                      lambda o, v, n: AcknowledgeType.REJECT if o in bad else AcknowledgeType.ACCEPT)
        out(f"first member: {show(got)}")
        out(f"rejected {ranges(bad)}, accepted {ranges(o for o in offsets if o not in bad)}")
    finally:
        c.close()
    out("first member closed")
    next_only(bootstrap, topic, group, "a second member gets", "r-010")
    describe(bootstrap, group)


def share_groups_tool(bootstrap, *args):
    """Runs kafka-share-groups.sh (ShareGroupCommand, through
    scripts/kafka-oracle) against BOOTSTRAP; its stdout's non-blank lines."""
    cmd = [ORACLE, "tool", "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
           "--bootstrap-server", bootstrap, *args]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=WAIT)
    log(r.stdout + r.stderr)
    check(r.returncode == 0, f"kafka-share-groups {' '.join(args)}: exit {r.returncode}")
    return [line.split() for line in r.stdout.splitlines() if line.strip()]


def describe(bootstrap, group):
    """kafka-share-groups.sh --describe --state and --offsets for GROUP,
    masked: no group or topic name, no coordinator; and no START-OFFSET,
    which Kafka persists lazily (it stays at the first offset of the last
    batch acquired, here 10 with every record acknowledged: a detail of its
    share-state persistence, not of the protocol)."""
    rows = share_groups_tool(bootstrap, "--describe", "--state", "--group", group)
    check(rows[0][0] == "GROUP" and rows[0][-2:] == ["STATE", "#MEMBERS"] and len(rows) == 2, f"--state: {rows}")
    out(f"kafka-share-groups --describe --state: STATE {rows[1][-2]} #MEMBERS {rows[1][-1]}")
    rows = share_groups_tool(bootstrap, "--describe", "--offsets", "--group", group)
    check(rows[0] == ["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"], f"--offsets: {rows}")
    for row in rows[1:]:
        check(len(row) == 5, f"--offsets: {row}")
        out(f"kafka-share-groups --describe --offsets: PARTITION {row[2]} LAG {row[4]}")


def kill(bootstrap, topic, group, stall=False):
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest",
                                 "share.record.lock.duration.ms": str(LOCK_MS)})
    first = [f"r-{i:03d}" for i in range(10)]
    produce(bootstrap, topic, first)
    out(f"produced {len(first)} records")
    victim = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "share-kill-victim", bootstrap, topic, group],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([victim.stdout], [], [], WAIT)
        check(ready, f"the victim acquired nothing within {WAIT} s")
        line = victim.stdout.readline().strip()
        acquired_at = time.monotonic()
        check(line, "the victim exited before acquiring records")
        out(f"victim acquired {line}")
        if stall:
            # Its connections stay open: only the locks' expiry frees the records.
            victim.send_signal(signal.SIGSTOP)
            out("victim SIGSTOPped before acknowledging")
        else:
            victim.send_signal(signal.SIGKILL)
            victim.wait(30)
            out("victim SIGKILLed before acknowledging")
        second = [f"r-{i:03d}" for i in range(10, 20)]
        offsets = produce(bootstrap, topic, second)
        out(f"produced {len(second)} more records")
        c = share_consumer(bootstrap, group, topic, explicit=True)
        try:
            redelivered_at = []

            def decide(o, v, n):
                if n > 1 and not redelivered_at:
                    redelivered_at.append(time.monotonic())
                return AcknowledgeType.ACCEPT

            got = consume(c, lambda got: len({o for o, _, _ in got}) >= 20, decide)
        finally:
            c.close()
    finally:
        if victim.poll() is None:
            victim.kill()  # SIGKILL ends a stopped process too
            victim.wait(30)
    out(f"second member: {show(got)}")
    check(sorted(o for o, _, _ in got) == list(range(offsets[-1] + 1)), f"second member got {got}")
    waited = redelivered_at[0] - acquired_at if redelivered_at else None
    log(f"redelivered {waited} s after the victim acquired them")
    if stall:
        # Not for share-kill: Kafka releases a killed member's records as
        # soon as its connection closes, before their locks expire.
        out(f"redelivered only after the lock expired: {waited is not None and waited >= LOCK_MS / 1000 - 1}")


def stall(bootstrap, topic, group):
    kill(bootstrap, topic, group, stall=True)


def kill_victim(bootstrap, topic, group):
    """share-kill's member: prints what its first non-empty poll acquired
    ("offsets 0-9 (delivery count 1)") and then waits, without
    acknowledging, to be killed."""
    c = share_consumer(bootstrap, group, topic, explicit=True)
    deadline = time.monotonic() + WAIT
    while True:
        check(time.monotonic() < deadline, f"victim: no records within {WAIT} s")
        batch = records(c, 0.2)
        if batch:
            break
    out(show([(m.offset(), m.value().decode(), m.delivery_count()) for m in batch]))
    time.sleep(VICTIM_LIFETIME)
    os._exit(1)


def poison(bootstrap, topic, group):
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest",
                                 "share.delivery.count.limit": str(DELIVERY_LIMIT)})
    values = ["ok-0", "poison", "ok-2", "ok-3", "ok-4"]
    produce(bootstrap, topic, values)
    out(f"produced {' '.join(values)}")
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        def decide(o, v, n):
            return AcknowledgeType.RELEASE if v == "poison" else AcknowledgeType.ACCEPT

        def poisoned(got):
            return sum(1 for _, v, _ in got if v == "poison") >= DELIVERY_LIMIT

        got = consume(c, poisoned, decide, quiet=0, commit_each=False)
        later = ["ok-5", "ok-6", "ok-7"]
        produce(bootstrap, topic, later)
        got += consume(c, lambda got: len(got) >= len(later), decide, commit_each=False)
        commit(c)
    finally:
        c.close()
    counts = [n for _, v, n in got if v == "poison"]
    out(f"poison delivered {len(counts)} times, delivery counts {' '.join(map(str, counts))}")
    rest = sorted((o, v, n) for o, v, n in got if v != "poison")
    out("the others delivered: " + " ".join(f"{v}(count {n})" for _, v, n in rest))


def reset(bootstrap, topic, group):
    """kafka-share-groups.sh --reset-offsets and --delete-offsets on an
    empty group: after the first member accepted 10 records and closed,
    --reset-offsets --to-earliest makes all of them (and 5 more) new
    again; refused while a member is in the group; --delete-offsets drops
    the state, so the group starts over from share.auto.offset.reset."""
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    produce(bootstrap, topic, [f"r-{i:03d}" for i in range(10)])
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= 10, lambda *r: AcknowledgeType.ACCEPT)
        out(f"first member: {show(got)}")
        member = share_consumer(bootstrap, group, topic, explicit=True)
    finally:
        c.close()
    try:
        # Once this member is in the group, the tool refuses.
        deadline = time.monotonic() + WAIT
        while True:
            check(time.monotonic() < deadline, f"the member did not join within {WAIT} s")
            records(member, 0.2)
            rows = share_groups_tool(bootstrap, "--describe", "--state", "--group", group)
            if len(rows) == 2 and rows[1][-1] == "1":
                break
        out(f"--reset-offsets with a member in the group refused: {tool_refuses(bootstrap, group, topic)}")
    finally:
        member.close()
    produce(bootstrap, topic, [f"r-{i:03d}" for i in range(10, 15)])
    rows = share_groups_tool(bootstrap, "--reset-offsets", "--group", group, "--topic", topic,
                             "--to-earliest", "--execute")
    out("--reset-offsets --to-earliest --execute: " + " ".join(" ".join(r[2:]) for r in rows))
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= 15, lambda *r: AcknowledgeType.ACCEPT)
        out(f"after the reset: {show(got)}")
    finally:
        c.close()
    rows = share_groups_tool(bootstrap, "--delete-offsets", "--group", group, "--topic", topic)
    out("--delete-offsets: " + " | ".join(" ".join(r[1:]) for r in rows))
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= 15, lambda *r: AcknowledgeType.ACCEPT)
        out(f"after the delete: {show(got)}")
    finally:
        c.close()


def tool_refuses(bootstrap, group, topic):
    """Whether kafka-share-groups.sh --reset-offsets --execute fails now
    (the group has a member)."""
    cmd = [ORACLE, "tool", "org.apache.kafka.tools.consumer.group.ShareGroupCommand",
           "--bootstrap-server", bootstrap, "--reset-offsets", "--group", group, "--topic", topic,
           "--to-earliest", "--execute"]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=WAIT)
    log(r.stdout + r.stderr)
    text = (r.stdout + r.stderr).lower()
    return r.returncode != 0 or "not empty" in text or "inactive" in text


# --- dead-letter queues (KIP-1191)


def produce_records(bootstrap, topic, recs):
    """Produces `recs`, each (partition, key, value, headers) with the key
    None or a str and the headers a list of (name, str), in order, and
    waits for every delivery report; returns {value: (partition, offset,
    timestamp in ms)}."""
    p = Producer(client_conf(bootstrap, **{"linger.ms": 5, "enable.idempotence": True}))
    done = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            done[msg.value().decode()] = (msg.partition(), msg.offset(), msg.timestamp()[1])

    for partition, key, value, headers in recs:
        p.produce(topic, key=None if key is None else key.encode(), value=value.encode(), partition=partition,
                  headers=[(k, v.encode()) for k, v in headers] or None, on_delivery=report)
    check(p.flush(WAIT) == 0, "produce: records left unsent")
    check(not errors, f"produce: {errors}")
    return done


def read_topic(bootstrap, topic, at_least, settle=QUIET):
    """Waits until TOPIC's partitions' high watermarks add up to at least
    `at_least`, then `settle` seconds more (a record written late shows),
    and reads every partition from its earliest offset up to its high
    watermark then with a plain Consumer (assign(), no group); returns
    (the records in (partition, offset) order, the high watermarks)."""
    admin = AdminClient(client_conf(bootstrap))
    parts = sorted(admin.list_topics(topic, timeout=10).topics[topic].partitions)
    c = Consumer(client_conf(bootstrap, **{"group.id": f"{topic}-reader", "enable.auto.commit": False}))
    try:
        tps = [TopicPartition(topic, p) for p in parts]

        def highs():
            return [c.get_watermark_offsets(tp, timeout=10)[1] for tp in tps]

        start = time.monotonic()
        deadline = start + WAIT
        while sum(highs()) < at_least:
            check(time.monotonic() < deadline, f"{at_least} records in the DLQ topic within {WAIT} s: {highs()}")
            time.sleep(0.05)
        log(f"{topic}: {at_least} records there after {time.monotonic() - start:.3f} s")
        time.sleep(settle)
        high = highs()
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        got = []
        deadline = time.monotonic() + WAIT
        while not all(h == 0 or tp.offset >= h for tp, h in zip(c.position(tps), high)):
            check(time.monotonic() < deadline, f"the DLQ topic read up to {high} within {WAIT} s")
            for m in c.consume(100, 0.2):
                if m.error():
                    raise KafkaException(m.error())
                if m.offset() < high[m.partition()]:
                    got.append(m)
        return sorted(got, key=lambda m: (m.partition(), m.offset())), high
    finally:
        c.close()


def dlq_report(bootstrap, dlq_topic, topic, group, at_least, produced, since_ms):
    """Reads the whole DLQ topic (read_topic) and prints its records, per
    DLQ partition in the order of their source records (the DLQ order of
    records from different source partitions is up to timing): key, value
    and headers in their order, the names of TOPIC and GROUP masked; then
    the count per DLQ partition, the timestamp type, and whether every
    timestamp lies between `since_ms` and now and is not before its source
    record's (`produced`: produce_records' result)."""
    got, high = read_topic(bootstrap, dlq_topic, at_least)
    now_ms = int(time.time() * 1000)

    def header(name, value):
        if value is None:
            return f"{name}=(null)"
        v = value.decode()
        if name == "__dlq.errors.topic" and v == topic:
            return f"{name}=TOPIC"
        if name == "__dlq.errors.group" and v == group:
            return f"{name}=GROUP"
        return f"{name}={v.replace(topic, 'TOPIC').replace(group, 'GROUP')}"

    def src(m):
        h = {k: v for k, v in (m.headers() or [])}
        try:
            return int(h["__dlq.errors.partition"]), int(h["__dlq.errors.offset"])
        except (KeyError, TypeError, ValueError):
            return -1, m.offset()

    for m in sorted(got, key=lambda m: (m.partition(), src(m))):
        key = None if m.key() is None else m.key().decode()
        value = None if m.value() is None else m.value().decode()
        headers = " ".join(header(k, v) for k, v in (m.headers() or []))
        out(f"dlq partition {m.partition()}: key {key} value {value} headers {headers}")
    counts = [sum(1 for m in got if m.partition() == p) for p in range(len(high))]
    out("DLQ records per partition: " + " ".join(f"{p}:{n}" for p, n in enumerate(counts))
        + " (high watermarks " + " ".join(map(str, high)) + ")")
    kinds = {TIMESTAMP_CREATE_TIME: "CreateTime", TIMESTAMP_LOG_APPEND_TIME: "LogAppendTime"}
    out("DLQ timestamp types: " + " ".join(sorted({kinds.get(m.timestamp()[0], "none") for m in got})))
    by_source = {(p, o): ts for p, o, ts in produced.values()}
    plausible = all(since_ms - 1000 <= m.timestamp()[1] <= now_ms + 1000
                    and m.timestamp()[1] >= by_source.get(src(m), 0) for m in got)
    for m in got:
        log(f"DLQ {m.partition()}@{m.offset()} from {src(m)}: timestamp {m.timestamp()[1] - since_ms} ms "
            f"after the start, {m.timestamp()[1] - by_source.get(src(m), 0)} ms after its source record's")
    out(f"DLQ timestamps plausible (after the run started, not before the source record's): {plausible}")
    out(f"DLQ timestamps equal to their source records': "
        f"{all(m.timestamp()[1] == by_source.get(src(m)) for m in got)}")
    return got


def dlq(bootstrap, topic, group):
    since_ms = int(time.time() * 1000)
    dlq_topic = f"dlq.{topic}"
    create(bootstrap, topic, partitions=3)
    create(bootstrap, dlq_topic, partitions=2, config=DLQ_TOPIC_CONFIG)
    out("created TOPIC (3 partitions) and dlq.TOPIC (2 partitions, "
        + " ".join(f"{k}={v}" for k, v in DLQ_TOPIC_CONFIG.items()) + ")")
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest",
                                 "share.delivery.count.limit": "2",
                                 "errors.deadletterqueue.topic.name": dlq_topic},
              mask=lambda v: v.replace(topic, "TOPIC"))
    recs = [(p, f"k{p}-{o}", f"p{p}-o{o}", [("trace", f"t{p}-{o}")]) for p in range(3) for o in range(5)]
    produced = produce_records(bootstrap, topic, recs)
    check(sorted(produced[v][:2] for _, _, v, _ in recs) == [(p, o) for p in range(3) for o in range(5)],
          f"produced at {produced}")
    out("produced p0-o0..p2-o4 to partitions 0-2, offsets 0-4 (keys kP-O, header trace=tP-O)")
    poisoned = "p2-o3"

    def decide(o, v, n):
        if v.endswith("-o1"):
            return AcknowledgeType.REJECT
        return AcknowledgeType.RELEASE if v == poisoned else AcknowledgeType.ACCEPT

    def done(got):
        return len({v for _, v, _ in got}) >= len(recs) and sum(1 for _, v, _ in got if v == poisoned) >= 2

    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, done, decide)
    finally:
        c.close()
    for p in range(3):
        out(f"partition {p}: {show([r for r in got if r[1].startswith(f'p{p}-')])}")
    out(f"rejected offset 1 of each partition, released {poisoned} at every delivery, accepted the rest")
    dlq_report(bootstrap, dlq_topic, topic, group, 4, produced, since_ms)
    next_only(bootstrap, topic, group, "a second member then gets", "p0-o5")


def dlq_copy(bootstrap, topic, group):
    since_ms = int(time.time() * 1000)
    dlq_topic = f"dlq.{topic}"
    create(bootstrap, topic)
    create(bootstrap, dlq_topic, config=DLQ_TOPIC_CONFIG)
    out("created TOPIC and dlq.TOPIC (1 partition each, "
        + " ".join(f"{k}={v}" for k, v in DLQ_TOPIC_CONFIG.items()) + ")")
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest",
                                 "errors.deadletterqueue.topic.name": dlq_topic,
                                 "errors.deadletterqueue.copy.record.enable": "true"},
              mask=lambda v: v.replace(topic, "TOPIC"))
    recs = [
        (0, "k-0", "c-0", [("trace", "t-0")]),
        (0, "k-1", "c-1", [("trace", "t-1"), ("attempt", "1")]),
        (0, "k-2", "c-2", [("trace", "t-2")]),
        (0, None, "c-3", [("trace", "t-3")]),
        (0, "k-4", "c-4", []),
    ]
    produced = produce_records(bootstrap, topic, recs)
    out("produced " + " ".join(f"{v}(key {k}, headers {' '.join(f'{a}={b}' for a, b in h) or 'none'})"
                               for _, k, v, h in recs))
    bad = {"c-1", "c-3"}
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= len(recs),
                      lambda o, v, n: AcknowledgeType.REJECT if v in bad else AcknowledgeType.ACCEPT)
    finally:
        c.close()
    out(f"first member: {show(got)}")
    out(f"rejected {' '.join(sorted(bad))}, accepted the rest")
    dlq_report(bootstrap, dlq_topic, topic, group, len(bad), produced, since_ms)
    next_only(bootstrap, topic, group, "a second member then gets", "c-5")


def dlq_deleted(bootstrap, topic, group):
    since_ms = int(time.time() * 1000)
    dlq_topic = f"dlq.{topic}"
    create(bootstrap, topic)
    create(bootstrap, dlq_topic, config=DLQ_TOPIC_CONFIG)
    out("created TOPIC and dlq.TOPIC (1 partition each, "
        + " ".join(f"{k}={v}" for k, v in DLQ_TOPIC_CONFIG.items()) + ")")
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest",
                                 "errors.deadletterqueue.topic.name": dlq_topic,
                                 "errors.deadletterqueue.copy.record.enable": "true"},
              mask=lambda v: v.replace(topic, "TOPIC"))
    values = [f"g-{i}" for i in range(4)]
    c, batch = one_poll(bootstrap, topic, group, values)
    produced = {m.value().decode(): (m.partition(), m.offset(), m.timestamp()[1]) for m in batch}
    try:
        admin = AdminClient(client_conf(bootstrap))
        for tp, f in admin.delete_records([TopicPartition(topic, 0, 2)]).items():
            deleted = f.result(WAIT)
            out(f"DeleteRecords before offset 2: low watermark {deleted.low_watermark}")
        for m in batch:
            c.acknowledge(m, AcknowledgeType.REJECT if m.offset() in (0, 2) else AcknowledgeType.ACCEPT)
        result = c.commit_sync(WAIT)
        for tp, err in sorted(result.items(), key=lambda r: r[0].partition):
            out(f"commit of rejected 0 and 2, accepted 1 and 3: partition {tp.partition}: "
                f"{'ok' if err is None else err.args[0].name()}")
    finally:
        c.close()
    dlq_report(bootstrap, dlq_topic, topic, group, 1, produced, since_ms)
    next_only(bootstrap, topic, group, "a second member then gets", "g-4")


def try_set_group(bootstrap, group, name, value, mask=lambda v: v):
    """Sets one config of GROUP; prints "NAME=VALUE: accepted" or the
    error's name (its message goes to stderr)."""
    admin = AdminClient(client_conf(bootstrap))
    entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])
    try:
        for f in admin.incremental_alter_configs([resource]).values():
            f.result(WAIT)
        verdict = "accepted"
    except KafkaException as e:
        err = e.args[0]
        log(f"{name}={value}: {err.name()}: {err.str()}")
        verdict = err.name()
    out(f"{name}={mask(value)}: {verdict}")


def reject_one(bootstrap, topic, group, values, bad):
    """Produces `values`; a member rejects `bad` and accepts the others,
    and its commit_sync carries the acknowledgements: prints what it got
    and the commit's result per partition."""
    produce(bootstrap, topic, values)
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        # quiet=0, commit_each=False: the acknowledgements ride on commit_sync.
        got = consume(c, lambda got: len(got) >= len(values),
                      lambda o, v, n: AcknowledgeType.REJECT if v == bad else AcknowledgeType.ACCEPT,
                      quiet=0, commit_each=False)
        result = c.commit_sync(WAIT)
    finally:
        c.close()
    out(f"member: {' '.join(f'{v}(count {n})' for _, v, n in sorted(got))}; rejected {bad}")
    out("its commit_sync: " + " ".join(f"partition {tp.partition} {'ok' if err is None else err.name()}"
                                       for tp, err in sorted(result.items(), key=lambda i: i[0].partition)))
    for tp, err in result.items():
        if err is not None:
            log(f"commit_sync {tp.topic} [{tp.partition}]: {err}")


def topic_exists(bootstrap, topic):
    admin = AdminClient(client_conf(bootstrap))
    return topic in admin.list_topics(timeout=10).topics


def dlq_configs(bootstrap, topic, group):
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    name = "errors.deadletterqueue.topic.name"
    for value in ["__dlq", "other-topic", "dlq.ok", ""]:
        try_set_group(bootstrap, group, name, value)
    try_set_group(bootstrap, group, "errors.deadletterqueue.copy.record.enable", "maybe")

    def mask(v):
        return v.replace(topic, "TOPIC")

    def holds(dlq_topic, at_least, settle):
        got, high = read_topic(bootstrap, dlq_topic, at_least, settle)
        sources = " ".join(dict(m.headers() or []).get("__dlq.errors.offset", b"?").decode() for m in got)
        out(f"{mask(dlq_topic)} then holds {len(got)} records (high watermark {' '.join(map(str, high))})"
            + (f", of source offsets {sources}" if got else ""))

    # A DLQ topic that does not exist (and is not auto-created).
    missing = f"dlq.{topic}-missing"
    set_group(bootstrap, group, {name: missing}, mask=mask)
    reject_one(bootstrap, topic, group, ["r-000", "r-001", "r-002"], "r-001")
    next_only(bootstrap, topic, group, "a second member then gets", "r-003")
    time.sleep(QUIET)
    out(f"dlq.TOPIC-missing exists: {topic_exists(bootstrap, missing)}")

    # An existing DLQ topic without the dlq. prefix (the group config
    # allows it).
    other = f"other.{topic}"
    create(bootstrap, other, config=DLQ_TOPIC_CONFIG)
    out("created other.TOPIC (" + " ".join(f"{k}={v}" for k, v in DLQ_TOPIC_CONFIG.items()) + ")")
    set_group(bootstrap, group, {name: other}, mask=mask)
    reject_one(bootstrap, topic, group, ["r-004", "r-005"], "r-005")
    holds(other, 0, DLQ_SETTLE)

    # A DLQ topic without errors.deadletterqueue.group.enable=true.
    disabled = f"dlq.{topic}-disabled"
    create(bootstrap, disabled)
    out("created dlq.TOPIC-disabled (no topic configs)")
    set_group(bootstrap, group, {name: disabled}, mask=mask)
    reject_one(bootstrap, topic, group, ["r-006", "r-007"], "r-007")
    holds(disabled, 0, DLQ_SETTLE)

    # The same topic with errors.deadletterqueue.group.enable=true.
    admin = AdminClient(client_conf(bootstrap))
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in DLQ_TOPIC_CONFIG.items()]
    for f in admin.incremental_alter_configs(
            [ConfigResource(ResourceType.TOPIC, disabled, incremental_configs=entries)]).values():
        f.result(WAIT)
    out("dlq.TOPIC-disabled topic configs set: " + " ".join(f"{k}={v}" for k, v in DLQ_TOPIC_CONFIG.items()))
    reject_one(bootstrap, topic, group, ["r-008", "r-009"], "r-009")
    holds(disabled, 1, QUIET)
    next_only(bootstrap, topic, group, "a last member then gets", "r-010")


def many(bootstrap, topic, group):
    """Four share groups (GROUP-0 .. GROUP-3) on one topic, one after the
    other: each member accepts the 5 records and closes; then each group
    in turn gets only the one record produced after that. (tests/share_groups.rs
    runs it against a broker that keeps at most 2 share partitions in
    memory per shard: the groups' state is read back.)"""
    create(bootstrap, topic)
    groups = [f"{group}-{i}" for i in range(4)]
    for g in groups:
        set_group(bootstrap, g, {"share.auto.offset.reset": "earliest"})
    produce(bootstrap, topic, [f"g-{i}" for i in range(5)])
    for i, g in enumerate(groups):
        c = share_consumer(bootstrap, g, topic, explicit=True)
        try:
            got = consume(c, lambda got: len(got) >= 5, lambda *r: AcknowledgeType.ACCEPT)
        finally:
            c.close()
        out(f"group {i}: {show(got)}")
    [offset] = produce(bootstrap, topic, ["after"])
    for i, g in enumerate(groups):
        c = share_consumer(bootstrap, g, topic, explicit=True)
        try:
            got = consume(c, lambda got: any(v == "after" for _, v, _ in got),
                          lambda *r: AcknowledgeType.ACCEPT)
        finally:
            c.close()
        out(f"group {i} then gets: " + " ".join(f"{v} (delivery count {n})" for _, v, n in got))
        check(got == [(offset, "after", 1)], f"group {i}: expected only after at {offset}, got {got}")


def values_line(got):
    """Records in offset order as "c-0(count 1) ...", then their offsets."""
    got = sorted(got)
    return " ".join(f"{v}(count {n})" for _, v, n in got) + f" at offsets {ranges(o for o, _, _ in got)}"


def read_committed(bootstrap, topic, group):
    """share.isolation.level (GROUP-rc read_committed, GROUP-ru
    read_uncommitted) over committed, aborted, non-transactional and open
    transactional records on one partition."""
    create(bootstrap, topic)
    rc, ru = f"{group}-rc", f"{group}-ru"
    set_group(bootstrap, rc, {"share.auto.offset.reset": "earliest", "share.isolation.level": "read_committed"})
    set_group(bootstrap, ru, {"share.auto.offset.reset": "earliest"})

    offsets = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            offsets[msg.value().decode()] = msg.offset()

    tx = Producer(client_conf(bootstrap, **{"transactional.id": f"{topic}-tx", "linger.ms": 5}))
    tx.init_transactions(WAIT)

    def transaction(values, end):
        tx.begin_transaction()
        for v in values:
            tx.produce(topic, value=v.encode(), partition=0, on_delivery=report)
        check(tx.flush(WAIT) == 0, "produce: records left unsent")
        check(not errors, f"produce: {errors}")
        check(all(v in offsets for v in values), f"produce: no offsets for {values}: {offsets}")
        if end == "commit":
            tx.commit_transaction(WAIT)
        elif end == "abort":
            tx.abort_transaction(WAIT)

    committed = [f"c-{i}" for i in range(6)]
    aborted = [f"a-{i}" for i in range(3)]
    pending = ["o-0", "o-1"]
    transaction(committed[:3], "commit")
    transaction(aborted, "abort")
    transaction(committed[3:], "commit")
    offsets["p-0"] = produce(bootstrap, topic, ["p-0"])[0]
    transaction(pending, "open")
    out("produced in transactions c-0 c-1 c-2 (committed), a-0 a-1 a-2 (aborted), c-3 c-4 c-5 (committed); "
        "then p-0 without a transaction; then o-0 o-1 in a transaction left open")
    log(f"offsets: {offsets}")

    c = share_consumer(bootstrap, rc, topic, explicit=True)
    try:
        want = set(committed) | {"p-0"}
        got = consume(c, lambda got: want <= {v for _, v, _ in got}, lambda *r: AcknowledgeType.ACCEPT)
        out(f"read_committed member, transaction open: {values_line(got)}")
        check(sorted(got) == sorted((offsets[v], v, 1) for v in want),
              f"read_committed, transaction open: expected {sorted(want)} once each, got {got}")
        tx.commit_transaction(WAIT)
        out("committed the open transaction")
        got = consume(c, lambda got: set(pending) <= {v for _, v, _ in got}, lambda *r: AcknowledgeType.ACCEPT)
        out(f"read_committed member, after the commit: {values_line(got)}")
        check(sorted(got) == [(offsets[v], v, 1) for v in pending],
              f"read_committed, after the commit: expected only {pending}, got {got}")
    finally:
        c.close()

    c = share_consumer(bootstrap, ru, topic, explicit=True)
    try:
        want = set(committed) | set(aborted) | {"p-0"} | set(pending)
        got = consume(c, lambda got: want <= {v for _, v, _ in got}, lambda *r: AcknowledgeType.ACCEPT)
        out(f"read_uncommitted member: {values_line(got)}")
        check(sorted(got) == sorted((offsets[v], v, 1) for v in want),
              f"read_uncommitted: expected {sorted(want)} once each, got {got}")
    finally:
        c.close()


def one_poll(bootstrap, topic, group, values):
    """Produces `values` to partition 0 in one batch; a new member's
    (explicit acknowledgement) first poll that returns records gets them
    all: (the member, those records)."""
    p = Producer(client_conf(bootstrap, **{"linger.ms": 1000}))
    for v in values:
        p.produce(topic, value=v.encode(), partition=0)
    check(p.flush(WAIT) == 0, "produce: records left unsent")
    out(f"produced {len(values)} records in one batch")
    c = share_consumer(bootstrap, group, topic, explicit=True)
    deadline = time.monotonic() + WAIT
    batch = []
    while not batch:
        check(time.monotonic() < deadline, f"no records within {WAIT} s")
        batch = records(c, 0.2)
    got = [(m.offset(), m.value().decode(), m.delivery_count()) for m in batch]
    out(f"one poll: {show(got)}")
    return c, batch


def acknowledge_and_vanish(c, batch, kinds, line):
    """Acknowledges each record of `batch` by `kinds` ((below this offset,
    this type), in order; records past the last are held), commits, prints
    `line` and exits without closing (the broker is SIGKILLed next)."""
    for m in batch:
        kind = next((k for below, k in kinds if m.offset() < below), None)
        if kind is not None:
            c.acknowledge(m, kind)
    commit(c)
    out(line)
    os._exit(0)


def durable_before(bootstrap, topic, group):
    """The first half of a broker restart (the caller SIGKILLs the broker
    after it): 30 records in one batch; one member's single poll gets all
    30, accepts offsets 0-9, rejects 10-14 and holds 15-29 unacknowledged;
    its acknowledgements are committed (commit_sync: durable when
    answered), then the process exits without closing."""
    create(bootstrap, topic)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    c, batch = one_poll(bootstrap, topic, group, [f"d-{i:03d}" for i in range(30)])
    acknowledge_and_vanish(c, batch, [(10, AcknowledgeType.ACCEPT), (15, AcknowledgeType.REJECT)],
                           "accepted 0-9, rejected 10-14, holding 15-29")


def durable_after(bootstrap, topic, group):
    """The second half, after the broker's restart: a new member gets only
    the records nobody acknowledged (15-29, delivered once before, so with
    delivery count 2): no accepted or rejected record comes back."""
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= 15, lambda *r: AcknowledgeType.ACCEPT, quiet=2 * QUIET)
    finally:
        c.close()
    out(f"after the restart: {show(got)}")


def cluster_before(bootstrap, topic, group):
    create(bootstrap, topic, partitions=3)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    recs = [(p, None, f"p{p}-o{o}", []) for p in range(3) for o in range(4)]
    produced = produce_records(bootstrap, topic, recs)
    check(sorted(v[:2] for v in produced.values()) == [(p, o) for p in range(3) for o in range(4)],
          f"produced at {produced}")
    out("produced p0-o0..p2-o3 to partitions 0-2, offsets 0-3")
    released = set()

    def decide(o, v, n):
        if v == "p1-o2" and v not in released:
            released.add(v)
            return AcknowledgeType.RELEASE
        return AcknowledgeType.ACCEPT

    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len({v for _, v, _ in got}) >= len(recs) and released
                      and any(v == "p1-o2" and n == 2 for _, v, n in got), decide)
    finally:
        c.close()
    for p in range(3):
        out(f"partition {p}: {show([r for r in got if r[1].startswith(f'p{p}-')])}")
    out("released p1-o2 once, accepted the rest")


def cluster_after(bootstrap, topic, group):
    produced = produce_records(bootstrap, topic, [(p, None, f"p{p}-o4", []) for p in range(3)])
    out("after the restarts, produced p0-o4, p1-o4, p2-o4")
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= 3, lambda *r: AcknowledgeType.ACCEPT, quiet=2 * QUIET)
    finally:
        c.close()
    out("a new member gets: " + " ".join(f"{v} (delivery count {n})" for _, v, n in sorted(got, key=lambda r: r[1])))
    want = sorted((produced[v][1], v, 1) for v in produced)
    check(sorted(got) == want, f"expected only {want}, got {got}")


def moves_member(bootstrap, topic, group, values):
    """Produces `values`; a new member polls until it got them, accepting
    everything; prints what it got and checks it got those only, each
    delivered once."""
    offsets = produce(bootstrap, topic, values)
    out("produced " + " ".join(values))
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: set(values) <= {v for _, v, _ in got},
                      lambda *r: AcknowledgeType.ACCEPT)
    finally:
        c.close()
    out("a member gets: " + " ".join(f"{v} (delivery count {n})" for _, v, n in sorted(got, key=lambda r: r[1])))
    want = sorted(zip(offsets, values, [1] * len(values)))
    check(sorted(got) == want, f"expected only {want}, got {got}")


def moves_1(bootstrap, topic, group):
    admin = AdminClient(client_conf(bootstrap))
    for f in admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[1, 2, 3]])]).values():
        f.result(WAIT)
    out("created TOPIC: 1 partition on brokers 1, 2, 3")
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest"})
    moves_member(bootstrap, topic, group, ["m-0", "m-1"])


def moves_2(bootstrap, topic, group):
    moves_member(bootstrap, topic, group, ["m-2", "m-3"])


def moves_3(bootstrap, topic, group):
    moves_member(bootstrap, topic, group, ["m-4"])


def cluster_dlq(bootstrap, topic, group):
    since_ms = int(time.time() * 1000)
    dlq_topic = f"dlq.{topic}"
    admin = AdminClient(client_conf(bootstrap))
    for f in admin.create_topics([
            NewTopic(topic, num_partitions=1, replica_assignment=[[1]]),
            NewTopic(dlq_topic, num_partitions=1, replica_assignment=[[2]], config=DLQ_TOPIC_CONFIG)]).values():
        f.result(WAIT)
    out("created TOPIC on broker 1 and dlq.TOPIC on broker 2")
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest",
                                 "errors.deadletterqueue.topic.name": dlq_topic,
                                 "errors.deadletterqueue.copy.record.enable": "true"},
              mask=lambda v: v.replace(topic, "TOPIC"))
    recs = [(0, f"k-{i}", f"c-{i}", []) for i in range(3)]
    produced = produce_records(bootstrap, topic, recs)
    out("produced c-0 c-1 c-2")
    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= len(recs),
                      lambda o, v, n: AcknowledgeType.REJECT if v == "c-1" else AcknowledgeType.ACCEPT)
    finally:
        c.close()
    out(f"a member: {show(got)}; rejected c-1, accepted the rest")
    dlq_report(bootstrap, dlq_topic, topic, group, 1, produced, since_ms)


def dlq_durable_before(bootstrap, topic, group):
    """The first half of a broker restart with a dead-letter topic (the
    caller SIGKILLs the broker after it): dlq.TOPIC copies records,
    share.delivery.count.limit=2; 20 records in one batch; one member's
    single poll gets all 20, rejects 0-4, accepts 5-9 and holds 10-19; its
    acknowledgements are committed, then the process exits without
    closing."""
    dlq_topic = f"dlq.{topic}"
    create(bootstrap, topic)
    create(bootstrap, dlq_topic, config=DLQ_TOPIC_CONFIG)
    set_group(bootstrap, group, {"share.auto.offset.reset": "earliest",
                                 "share.delivery.count.limit": "2",
                                 "errors.deadletterqueue.topic.name": dlq_topic,
                                 "errors.deadletterqueue.copy.record.enable": "true"},
              mask=lambda v: v.replace(topic, "TOPIC"))
    c, batch = one_poll(bootstrap, topic, group, [f"x-{i:03d}" for i in range(20)])
    acknowledge_and_vanish(c, batch, [(5, AcknowledgeType.REJECT), (10, AcknowledgeType.ACCEPT)],
                           "rejected 0-4, accepted 5-9, holding 10-19")


def dlq_durable_after(bootstrap, topic, group):
    """The second half, after the broker's restart: a new member gets
    10-19 (delivery count 2), rejects 10-12, releases 13-14 (at the
    delivery limit: archived) and accepts the rest; then dlq.TOPIC holds
    each of 0-4 and 10-14 once, with their values and Kafka's headers.

    expected/share-dlq-durable-*.txt is what Kafka printed with its
    background writes done before the kill (2 s later). Kafka answers the
    commit first and writes the dead letters, and the killed member's
    release, after it: killed at once it may write a dead letter twice
    (at least once; seen in 1 of 8 runs) or come back with the held
    records' delivery count 1. sluice writes both before it answers, so
    it prints these lines whatever the timing (tests/share_groups.rs kills
    it at once)."""
    dlq_topic = f"dlq.{topic}"
    since_ms = int(time.time() * 1000) - 120_000

    def decide(o, v, n):
        if o <= 12:
            return AcknowledgeType.REJECT
        return AcknowledgeType.RELEASE if o <= 14 else AcknowledgeType.ACCEPT

    c = share_consumer(bootstrap, group, topic, explicit=True)
    try:
        got = consume(c, lambda got: len(got) >= 10, decide, quiet=2 * QUIET)
    finally:
        c.close()
    out(f"after the restart: {show(got)}")
    out("rejected 10-12, released 13-14 (at the limit), accepted 15-19")
    got = dlq_report(bootstrap, dlq_topic, topic, group, 10, {}, since_ms)
    sources = sorted(int(dict(m.headers())["__dlq.errors.offset"]) for m in got)
    check(sources == list(range(5)) + list(range(10, 15)), f"DLQ sources {sources}")


SCENARIOS = {
    "share-four": four,
    "share-release": release,
    "share-reject": reject,
    "share-kill": kill,
    "share-stall": stall,
    "share-kill-victim": kill_victim,
    "share-poison": poison,
    "share-reset": reset,
    "share-dlq": dlq,
    "share-dlq-copy": dlq_copy,
    "share-dlq-deleted": dlq_deleted,
    "share-dlq-configs": dlq_configs,
    "share-many": many,
    "share-read-committed": read_committed,
    "share-durable-before": durable_before,
    "share-durable-after": durable_after,
    "share-cluster-before": cluster_before,
    "share-cluster-dlq": cluster_dlq,
    "share-moves-1": moves_1,
    "share-moves-2": moves_2,
    "share-moves-3": moves_3,
    "share-cluster-after": cluster_after,
    "share-dlq-durable-before": dlq_durable_before,
    "share-dlq-durable-after": dlq_durable_after,
}

if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] not in SCENARIOS:
        sys.exit(__doc__)
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
