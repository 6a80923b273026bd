"""Raw ConsumerGroupHeartbeat v1 requests (member ids chosen by the
caller) on one connection, and OffsetFetch v9 naming any member and epoch
(kafka-python's message classes), for the differential tests of KIP-848
groups (tests/groups.rs, tests/group_topics.rs): a client library would
not send the malformed or out-of-turn requests these tests compare. The
snippet that includes this follows the test helpers (BOOTSTRAP,
Deadline)."""
import socket
import struct
import time


def wait_for_coordinator(group, topic):
    """Finds `group`'s coordinator, with __consumer_offsets made and its
    partition loaded, by an OffsetFetch of the group on `topic` (which
    does not make the group). NOT_COORDINATOR and
    COORDINATOR_LOAD_IN_PROGRESS, met while the partition opens as during
    a Kafka coordinator's load, are retried: librdkafka does not here."""
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
    finder = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group})
    deadline = Deadline(30, "the group coordinator, loaded")
    while True:
        try:
            finder.committed([TopicPartition(topic, 0)], timeout=30)
            break
        except KafkaException as e:
            if e.args[0].code() not in (KafkaError.NOT_COORDINATOR,
                                        KafkaError.COORDINATOR_LOAD_IN_PROGRESS):
                raise
            deadline.check()
            time.sleep(0.05)
    finder.close()


def heartbeats_on(topic, group, partitions=1):
    """Makes `topic` (`partitions` partitions), finds `group`'s loaded
    coordinator (wait_for_coordinator) and opens a Heartbeats
    connection, which it returns: the preamble of the raw-heartbeat
    snippets."""
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1)
    admin.create_topics([new])[topic].result(30)
    wait_for_coordinator(group, topic)
    return Heartbeats()


class Heartbeats:
    """One connection sending ConsumerGroupHeartbeat v1 (member ids chosen
    here), decoding the answers."""

    def __init__(self):
        host, port = BOOTSTRAP.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        self.sock.settimeout(30)
        self.cid = 0

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            buf += chunk
        return buf

    def beat(self, group, member, epoch, instance=None, topics=None, owned=None,
             regex=None, rebalance=None, rack=None):
        """One heartbeat; `rebalance` defaults to 30 s on a join, -1
        (unchanged) otherwise. Returns (error, message, member id, member
        epoch, assignment as [(topic id, partition)] or None)."""
        def uv(n):
            out = b""
            while n >= 0x80:
                out += bytes([(n & 0x7F) | 0x80])
                n >>= 7
            return out + bytes([n])
        cs = lambda s: b"\0" if s is None else uv(len(s.encode()) + 1) + s.encode()
        body = cs(group) + cs(member) + struct.pack(">i", epoch) + cs(instance) + cs(rack)
        if rebalance is None:
            rebalance = 30000 if epoch == 0 else -1
        body += struct.pack(">i", rebalance)
        body += b"\0" if topics is None else uv(len(topics) + 1) + b"".join(cs(t) for t in topics)
        body += cs(regex) + cs(None)  # SubscribedTopicRegex, ServerAssignor
        if owned is None:
            body += b"\0"
        else:
            by_topic = {}
            for tid, p in owned:
                by_topic.setdefault(tid, []).append(p)
            body += uv(len(by_topic) + 1)
            for tid, ps in by_topic.items():
                body += tid + uv(len(ps) + 1) + b"".join(struct.pack(">i", p) for p in ps) + b"\0"
        body += b"\0"
        self.cid += 1
        header = struct.pack(">hhih", 68, 1, self.cid, 3) + b"raw" + b"\0"
        self.sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        (size,) = struct.unpack(">i", self._recv(4))
        r = Reader(self._recv(size))
        r.i32(); r.uv()  # correlation id, tagged fields
        r.i32()  # throttle
        error = r.i16()
        message = r.cstr()
        member_id = r.cstr()
        member_epoch = r.i32()
        r.i32()  # heartbeat interval
        assignment = None
        if r.i8() == 1:
            assignment = []
            for _ in range(r.uv() - 1):
                tid = r.take(16)
                for _ in range(r.uv() - 1):
                    assignment.append((tid, r.i32()))
                r.uv()
            r.uv()
        return error, message, member_id, member_epoch, assignment

    def offset_fetch(self, group, member, epoch, topic):
        """OffsetFetch v9 of `group`'s offset of `topic` partition 0, asked
        as `member` (None: no member) at `epoch`. Returns (the group's
        error, the partition's committed offset, or None when the group's
        error left no partition)."""
        from kafka.protocol.consumer.group import OffsetFetchRequest, OffsetFetchResponse
        request_class = OffsetFetchRequest[9]
        group_entry = request_class.OffsetFetchRequestGroup(
            group_id=group, member_id=member, member_epoch=epoch,
            topics=[request_class.OffsetFetchRequestGroup.OffsetFetchRequestTopics(
                name=topic, partition_indexes=[0])])
        request = request_class(groups=[group_entry], require_stable=False)
        self.cid += 1
        request.with_header(correlation_id=self.cid, client_id="raw")
        self.sock.sendall(bytes(request.encode(header=True, framed=True)))
        (size,) = struct.unpack(">i", self._recv(4))
        response = OffsetFetchResponse[9].decode(self._recv(size), header=True)
        answer = response.groups[0]
        offsets = [p.committed_offset for t in answer.topics for p in t.partitions]
        return answer.error_code, offsets[0] if offsets else None

    def beat_past_load(self, *args, **kw):
        """`beat`, sent again (for up to 30 s) while it is answered
        COORDINATOR_LOAD_IN_PROGRESS or COORDINATOR_NOT_AVAILABLE (the
        partition of __consumer_offsets still opening), as a client does."""
        deadline = Deadline(30, "the coordinator, loaded")
        while True:
            answer = self.beat(*args, **kw)
            if answer[0] not in (14, 15):
                return answer
            deadline.check()
            time.sleep(0.05)

class Reader:
    def __init__(self, b):
        self.b, self.i = b, 0
    def take(self, n):
        v = self.b[self.i:self.i + n]
        self.i += n
        return v
    def i8(self):
        return struct.unpack(">b", self.take(1))[0]
    def i16(self):
        return struct.unpack(">h", self.take(2))[0]
    def i32(self):
        return struct.unpack(">i", self.take(4))[0]
    def uv(self):
        n, shift = 0, 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
    def cstr(self):
        n = self.uv() - 1
        return None if n < 0 else self.take(n).decode()
