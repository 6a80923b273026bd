# Helpers for the Python snippets of the integration tests: common::python()
# in tests/common/mod.rs runs `python3 -c <this file + snippet> BOOTSTRAP ARGS...`.
# Snippets print what they consumed with emit(); the Rust test compares the
# lines with what it expects (common::emitted_messages). Every wait here has
# a deadline; a failure raises, so the process exits non-zero with a traceback.
import sys
import time

BOOTSTRAP = sys.argv[1]
ARGS = sys.argv[2:]


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def message(i):
    """The i-th test message (key, value); the same as common::message(i)."""
    return f"key-{i}".encode(), (f"value-{i}-" + "abcdefgh" * (i % 50)).encode()


def emit(offset, key, value):
    """One consumed message as a line: offset, key hex, value hex ('-' for null)."""
    show = lambda b: "-" if b is None else bytes(b).hex()
    print(offset, show(key), show(value), flush=True)


class Deadline:
    def __init__(self, seconds, what):
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.what = what

    def left(self):
        return max(0.0, self.end - time.monotonic())

    def check(self, detail=""):
        if time.monotonic() >= self.end:
            raise TimeoutError(f"timed out after {self.seconds} s: {self.what} {detail}")


# --- confluent-kafka (librdkafka)


def confluent_producer(**conf):
    from confluent_kafka import Producer

    config = {"bootstrap.servers": BOOTSTRAP, "acks": "all", "linger.ms": 5, "message.timeout.ms": 60000}
    config.update(conf)
    return Producer(config)


def confluent_produce(topic, first, count, partition=0, **conf):
    """Produces message(first .. first+count-1) to one partition and waits for
    every delivery report. Returns the offsets, in message order; raises if
    any message failed."""
    producer = confluent_producer(**conf)
    reports = {}

    def report(n):
        return lambda err, msg: reports.__setitem__(n, (err, msg.offset()))

    deadline = Deadline(60, f"producing {count} messages to {topic}")
    for n in range(first, first + count):
        key, value = message(n)
        while True:
            try:
                producer.produce(topic, key=key, value=value, partition=partition, on_delivery=report(n))
                break
            except BufferError:
                deadline.check("(local queue full)")
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(deadline.left())
    assert left == 0, f"{left} messages not delivered in time"
    errors = {n: str(err) for n, (err, _) in reports.items() if err is not None}
    assert not errors, f"delivery failed: {errors}"
    return [reports[n][1] for n in range(first, first + count)]


def confluent_consumer(**conf):
    from confluent_kafka import Consumer

    # librdkafka wants a group.id even for assign(); no group API is used
    # because nothing subscribes or commits.
    config = {
        "bootstrap.servers": BOOTSTRAP,
        "group.id": "sluice-tests",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
    }
    config.update(conf)
    return Consumer(config)


def confluent_take(consumer, count, seconds=60):
    """Polls until `count` messages arrived; returns them as (offset, key,
    value). Partition-EOF events are skipped; other errors raise."""
    from confluent_kafka import KafkaError

    got = []
    deadline = Deadline(seconds, f"consuming {count} messages")
    while len(got) < count:
        deadline.check(f"(got {len(got)})")
        m = consumer.poll(min(1.0, deadline.left()))
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise RuntimeError(f"consumer error: {m.error()}")
        got.append((m.offset(), m.key(), m.value()))
    return got


def confluent_wait_eof(consumer, seconds=60):
    """Polls until a partition-EOF event; returns its offset (the end the
    consumer reached). Raises if a message arrives first."""
    from confluent_kafka import KafkaError

    deadline = Deadline(seconds, "waiting for the end of the partition")
    while True:
        deadline.check()
        m = consumer.poll(min(1.0, deadline.left()))
        if m is None:
            continue
        if m.error() and m.error().code() == KafkaError._PARTITION_EOF:
            return m.offset()
        if m.error():
            raise RuntimeError(f"consumer error: {m.error()}")
        raise AssertionError(f"unexpected message at offset {m.offset()} before the end")


def confluent_consume(topic, partition, offset, count, seconds=60, **conf):
    """Assigns topic/partition at `offset` (a number or OFFSET_BEGINNING /
    OFFSET_END) and returns the first `count` messages."""
    from confluent_kafka import TopicPartition

    consumer = confluent_consumer(**conf)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        return confluent_take(consumer, count, seconds)
    finally:
        consumer.close()


# --- kafka-python


def kp_take(consumer, count, seconds=60):
    """Polls a kafka-python consumer until `count` records arrived; returns
    them as (offset, key, value) in partition order."""
    got = []
    deadline = Deadline(seconds, f"consuming {count} messages (kafka-python)")
    while len(got) < count:
        deadline.check(f"(got {len(got)})")
        for records in consumer.poll(timeout_ms=500).values():
            got.extend((r.offset, r.key, r.value) for r in records)
    return got
