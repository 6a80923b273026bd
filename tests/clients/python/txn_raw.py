#!/usr/bin/env python3
"""Transactional writes the partition leader or the group coordinator must
refuse (KIP-890 part 1), and transaction.version 2's implicit joins and
epoch bumps (KIP-890 part 2), sent as raw requests.

Usage: python3 txn_raw.py SCENARIO BOOTSTRAP PREFIX

Before it appends a transactional batch, the partition leader checks with
the transaction coordinator that the partition was added to the producer's
ongoing transaction (AddPartitionsToTxn); when it was not, the write is
refused and nothing is appended, so a late or stray transactional write
can never open a transaction on a partition that no one will end (a
"hanging transaction", which would hold the last stable offset back
forever). The group coordinator does the same before it takes a
TxnOffsetCommit: the group's __consumer_offsets partition must have been
added to the transaction (AddOffsetsToTxn), or the commit is refused and
leaves no pending offset (which would hold the group's offsets unstable
forever: OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT
while one is pending).

  unadded  a transactional batch produced without AddPartitionsToTxn is
           refused (at Produce v11, then again at v10) and leaves the log
           empty (both end offsets stay 0); then
           the normal path: the partition is added, the same batch
           (sequence 0) is accepted at offset 0 and committed, and the
           read_committed end meets the read_uncommitted one
  late     one transaction committed; then a batch with the next sequence
           and the same epoch, produced after the commit without adding the
           partition again (a late retry), is refused (at v11, then at
           v10): both end offsets stay equal, no transaction is left open
  no-id    the partition is added to the transaction, but the Produce
           request carrying the transactional batch has no transactional id
           (null): the error Kafka answers; the transaction is then aborted,
           and once the coordinator has completed the abort (a new
           InitProducerId succeeds) its marker is the only record in the
           log
  offsets-unadded
           a transaction writes one batch to PREFIX-in; a TxnOffsetCommit
           of offset 1 for group PREFIX-g, sent without AddOffsetsToTxn, is
           refused (at TxnOffsetCommit v3, then again at v4); then the
           normal path: AddOffsetsToTxn, the same TxnOffsetCommit (v3) is
           accepted, the transaction is committed, and once OffsetFetch with
           require_stable answers it (UNSTABLE_OFFSET_COMMIT is retried
           until the commit's marker is in) the committed offset is 1
  offsets-late
           the same transaction with AddOffsetsToTxn and TxnOffsetCommit of
           offset 1, committed (and waited for as above); then a
           TxnOffsetCommit of offset 5 with the same producer id and epoch,
           sent after the commit without a new transaction (a late retry),
           is refused (at v4, then at v3); 2 s later the committed offset is
           still 1 (OffsetFetch without require_stable) and OffsetFetch
           with require_stable answers no error (no pending offset is left:
           asked once, not retried)
  version2 transaction.version 2 on the wire (Produce v12, EndTxn v5): a
           transactional batch (sequence 0) produced without
           AddPartitionsToTxn is accepted (the leader adds the partition to
           the transaction); EndTxn commit answers the same producer id
           and the epoch bumped by one; the same EndTxn again (the old
           epoch: a retry) is answered as the commit it repeats; a batch
           with the old epoch and the next sequence (a zombie) is refused
           and appends nothing (both end offsets unchanged); the next
           transaction, under the new epoch, writes a batch (sequence 0)
           and is aborted (epoch +2); an abort with nothing produced (an
           empty abort) still bumps the epoch (+3); a commit with nothing
           ongoing is refused (its producer id and epoch are printed); and
           the end offsets once the read_committed end meets the
           read_uncommitted one. Epochs are printed relative to
           InitProducerId's
  offsets-version2
           a transaction writes one batch to PREFIX-in (Produce v12, no
           AddPartitionsToTxn); a TxnOffsetCommit v5 of offset 1 for group
           PREFIX-g, sent without AddOffsetsToTxn, is accepted (the group
           coordinator adds the group's partition to the transaction); the
           transaction is committed with EndTxn v5, and once OffsetFetch
           with require_stable answers it (UNSTABLE_OFFSET_COMMIT retried)
           the committed offset is 1

Requests and versions (kafka-python's protocol classes over one plain TCP
connection per broker, batches built with DefaultRecordBatchBuilder):
FindCoordinator v3 (key type 1, transaction; key type 0, group),
InitProducerId v4 (timeout 60 s), AddPartitionsToTxn v3 (one
transaction), EndTxn v4, Produce v11 (acks -1), ListOffsets v7 (timestamp
-1, isolation level 0 and 1), CreateTopics v5 (1 partition, replication
1), Metadata v9, AddOffsetsToTxn v4, TxnOffsetCommit v3 and v4 (no
member: member id "", generation -1, no group instance id; leader epoch
-1, metadata ""), OffsetFetch v7 (the first version with require_stable).

Produce v11 is the newest version with which a transactional client adds
its partitions itself: from v12 on a broker with transaction.version 2
(Kafka 4.x) adds the partition to the transaction implicitly when it
verifies the batch, so the refusal tested here would not happen. v11 is
also the first version to which the leader may answer
TRANSACTION_ABORTABLE (KIP-890): Kafka refuses the batch with
TRANSACTION_ABORTABLE at v11 and with INVALID_TXN_STATE below it, so the
refusals are sent at v10 too. EndTxn stays below v5 for the same reason
(v5 is transaction.version 2's EndTxn). TxnOffsetCommit likewise: from v5
on the group coordinator adds the group's partition to the transaction
implicitly (transaction.version 2, no AddOffsetsToTxn), so the scenarios
above send v5 only in offsets-version2; v4 is the first version that may be answered TRANSACTION_ABORTABLE,
and Kafka refuses an offset commit of a group not in the transaction with
TRANSACTION_ABORTABLE at v4 and INVALID_TXN_STATE at v3, so the refusals
are sent at both. (kafka-python has TxnOffsetCommit v0 to v5; Kafka 4.x
advertises it up to v5.) The version2 scenarios send Produce v12, EndTxn
v5 and TxnOffsetCommit v5 (the versions a transaction.version 2 client
sends); EndTxn v5 answers the producer id and epoch the producer goes on
with (the coordinator bumps the epoch when it ends a transaction).

Each scenario prints deterministic lines on stdout (no names given as
arguments, no ids, no timings), compared with what Apache Kafka printed
(expected/txn-SCENARIO.txt); diagnostics go to stderr. A failed
expectation raises. Every wait has a deadline (60 s at most); requests
answered CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS,
NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE are retried after a short
sleep until then, and so is a Produce answered NOT_ENOUGH_REPLICAS (what
Kafka's leader answers when its check with the coordinator meets one of
those: e.g. a late batch sent while the coordinator completes the
commit). Kafka's group coordinator answers such a check with
COORDINATOR_NOT_AVAILABLE instead, retried like the others (a
NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE from either coordinator
makes the next try find it again).
"""
import sys
import time

import kafka.errors
from kafka.protocol.admin.topics import CreateTopicsRequest, CreateTopicsResponse
from kafka.protocol.consumer.group import OffsetFetchRequest, OffsetFetchResponse
from kafka.protocol.consumer.offsets import ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse
from kafka.protocol.metadata.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from kafka.record.default_records import DefaultRecordBatchBuilder
from raw_conn import Conn

WAIT = 60  # seconds, the longest any single wait may take
RESPONSE_TIMEOUT = 30  # seconds, the longest one response may take
CLIENT_ID = "txn-raw"
TXN_TIMEOUT_MS = 60000

FIND_COORDINATOR_VERSION = 3
INIT_PRODUCER_ID_VERSION = 4
ADD_PARTITIONS_VERSION = 3
END_TXN_VERSION = 4
PRODUCE_VERSION = 11  # <= 11: the leader only verifies (see above)
OLD_PRODUCE_VERSION = 10  # before TRANSACTION_ABORTABLE
LIST_OFFSETS_VERSION = 7
CREATE_TOPICS_VERSION = 5
METADATA_VERSION = 9
ADD_OFFSETS_VERSION = 4  # may answer TRANSACTION_ABORTABLE; not a transaction.version 2 request
TXN_OFFSET_COMMIT_VERSION = 3  # before TRANSACTION_ABORTABLE
NEW_TXN_OFFSET_COMMIT_VERSION = 4  # < 5: the group coordinator only verifies (see above)
OFFSET_FETCH_VERSION = 7  # the first with require_stable
# transaction.version 2 (KIP-890 part 2): the partition or the group joins
# the transaction implicitly, EndTxn bumps the epoch
V2_PRODUCE_VERSION = 12
V2_END_TXN_VERSION = 5
V2_TXN_OFFSET_COMMIT_VERSION = 5

NONE = 0
COORDINATOR_LOAD_IN_PROGRESS = 14
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
NOT_ENOUGH_REPLICAS = 19
TOPIC_ALREADY_EXISTS = 36
CONCURRENT_TRANSACTIONS = 51
UNSTABLE_OFFSET_COMMIT = 88
RETRIABLE = {CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE}

READ_UNCOMMITTED = 0
READ_COMMITTED = 1


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def out(*args):
    print(*args, flush=True)


def error_name(code):
    err = kafka.errors.for_code(code)
    if err is kafka.errors.UnknownError and code != -1:
        return f"UNKNOWN_ERROR_CODE_{code}"
    return err.message


class Expectation(AssertionError):
    pass


def expect(cond, what):
    if not cond:
        raise Expectation(what)


# --- connections


class Cluster:
    def __init__(self, bootstrap):
        host, port = bootstrap.rsplit(":", 1)
        self.bootstrap = Conn(host, port, CLIENT_ID, RESPONSE_TIMEOUT)
        self.conns = {}

    def conn(self, host, port):
        key = (host, int(port))
        if key not in self.conns:
            self.conns[key] = Conn(host, port, CLIENT_ID, RESPONSE_TIMEOUT)
        return self.conns[key]

    def metadata(self, topic):
        T = MetadataRequest.MetadataRequestTopic
        return self.bootstrap.call(
            MetadataRequest,
            MetadataResponse,
            METADATA_VERSION,
            topics=[T(name=topic)],
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        )

    def create_topic(self, topic):
        T = CreateTopicsRequest.CreatableTopic
        r = self.bootstrap.call(
            CreateTopicsRequest,
            CreateTopicsResponse,
            CREATE_TOPICS_VERSION,
            topics=[T(name=topic, num_partitions=1, replication_factor=1, assignments=[], configs=[])],
            timeout_ms=30000,
            validate_only=False,
        )
        (t,) = r.topics
        if t.error_code not in (NONE, TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"CreateTopics {error_name(t.error_code)} {t.error_message}")

    def leader(self, topic):
        """Waits until partition 0 of topic has a leader that answers
        ListOffsets for it, and returns a connection to that leader."""
        deadline = time.time() + WAIT
        while True:
            r = self.metadata(topic)
            brokers = {b.node_id: b for b in r.brokers}
            ts = [t for t in r.topics if t.name == topic]
            if ts and ts[0].error_code == NONE:
                ps = [p for p in ts[0].partitions if p.partition_index == 0]
                if ps and ps[0].error_code == NONE and ps[0].leader_id in brokers:
                    b = brokers[ps[0].leader_id]
                    leader = self.conn(b.host, b.port)
                    code, _ = list_offset(leader, topic, READ_UNCOMMITTED)
                    if code == NONE:
                        return leader
                    log("leader not ready:", error_name(code))
            if time.time() > deadline:
                raise RuntimeError(f"topic {topic} has no leader after {WAIT} s")
            time.sleep(0.1)


def list_offset(conn, topic, isolation):
    T = ListOffsetsRequest.ListOffsetsTopic
    P = T.ListOffsetsPartition
    r = conn.call(
        ListOffsetsRequest,
        ListOffsetsResponse,
        LIST_OFFSETS_VERSION,
        replica_id=-1,
        isolation_level=isolation,
        topics=[T(name=topic, partitions=[P(partition_index=0, current_leader_epoch=-1, timestamp=-1)])],
    )
    (t,) = r.topics
    (p,) = t.partitions
    return p.error_code, p.offset


def ends(conn, topic):
    """(read_uncommitted end, read_committed end) of partition 0: the high
    watermark and the last stable offset."""
    result = []
    for isolation in (READ_UNCOMMITTED, READ_COMMITTED):
        code, offset = list_offset(conn, topic, isolation)
        expect(code == NONE, f"ListOffsets isolation {isolation}: {error_name(code)}")
        result.append(offset)
    return tuple(result)


def ends_line(what, e):
    return f"{what}: read_uncommitted end {e[0]}, read_committed end {e[1]}"


def wait_stable(conn, topic):
    """Waits until the last stable offset reaches the high watermark."""
    deadline = time.time() + WAIT
    while True:
        e = ends(conn, topic)
        if e[0] == e[1]:
            return e
        if time.time() > deadline:
            raise Expectation(f"last stable offset {e[1]} still below high watermark {e[0]} after {WAIT} s")
        time.sleep(0.1)


# --- one transactional producer, by hand


class Coordinated:
    """Requests to the coordinator of one key (FindCoordinator key type
    KEY_TYPE), found again when it answers NOT_COORDINATOR or
    COORDINATOR_NOT_AVAILABLE."""

    KEY_TYPE = None

    def __init__(self, cluster, key):
        self.cluster = cluster
        self.key = key
        self.coordinator = None

    def find_coordinator(self):
        deadline = time.time() + WAIT
        while True:
            r = self.cluster.bootstrap.call(
                FindCoordinatorRequest,
                FindCoordinatorResponse,
                FIND_COORDINATOR_VERSION,
                key=self.key,
                key_type=self.KEY_TYPE,
            )
            if r.error_code == NONE:
                self.coordinator = self.cluster.conn(r.host, r.port)
                return
            if r.error_code not in RETRIABLE or time.time() > deadline:
                raise RuntimeError(f"FindCoordinator: {error_name(r.error_code)} {r.error_message}")
            log("FindCoordinator:", error_name(r.error_code))
            time.sleep(0.1)

    def _retrying(self, what, send, also=()):
        """send() returns (error codes, result); retried while any code is
        retriable (in RETRIABLE or also), at most WAIT seconds."""
        deadline = time.time() + WAIT
        while True:
            if self.coordinator is None:
                self.find_coordinator()
            codes, result = send()
            retriable = [c for c in codes if c in RETRIABLE or c in also]
            if not retriable:
                return result
            if time.time() > deadline:
                raise RuntimeError(f"{what}: still {error_name(retriable[0])} after {WAIT} s")
            log(f"{what}: {error_name(retriable[0])}, retrying")
            if NOT_COORDINATOR in retriable or COORDINATOR_NOT_AVAILABLE in retriable:
                self.coordinator = None
            time.sleep(0.1)


class Txn(Coordinated):
    """A transactional producer; its coordinator is the transaction
    coordinator of its transactional id."""

    KEY_TYPE = 1

    def __init__(self, cluster, txn_id):
        super().__init__(cluster, txn_id)
        self.txn_id = txn_id
        self.pid = -1
        self.epoch = -1
        self.sequences = {}

    def init(self):
        def send():
            r = self.coordinator.call(
                InitProducerIdRequest,
                InitProducerIdResponse,
                INIT_PRODUCER_ID_VERSION,
                transactional_id=self.txn_id,
                transaction_timeout_ms=TXN_TIMEOUT_MS,
                producer_id=-1,
                producer_epoch=-1,
            )
            return [r.error_code], r

        r = self._retrying("InitProducerId", send)
        expect(r.error_code == NONE, f"InitProducerId: {error_name(r.error_code)}")
        self.pid, self.epoch = r.producer_id, r.producer_epoch
        log(f"producer id {self.pid} epoch {self.epoch}")

    def add_partition(self, topic, partition):
        """AddPartitionsToTxn for one partition; returns its error code."""
        T = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic

        def send():
            r = self.coordinator.call(
                AddPartitionsToTxnRequest,
                AddPartitionsToTxnResponse,
                ADD_PARTITIONS_VERSION,
                v3_and_below_transactional_id=self.txn_id,
                v3_and_below_producer_id=self.pid,
                v3_and_below_producer_epoch=self.epoch,
                v3_and_below_topics=[T(name=topic, partitions=[partition])],
            )
            codes = [p.partition_error_code for t in r.results_by_topic_v3_and_below for p in t.results_by_partition]
            expect(len(codes) == 1, f"AddPartitionsToTxn answered {len(codes)} partitions")
            return codes, codes[0]

        return self._retrying("AddPartitionsToTxn", send)

    def add_offsets(self, group_id):
        """AddOffsetsToTxn for group_id (its __consumer_offsets partition);
        returns the error code."""

        def send():
            r = self.coordinator.call(
                AddOffsetsToTxnRequest,
                AddOffsetsToTxnResponse,
                ADD_OFFSETS_VERSION,
                transactional_id=self.txn_id,
                producer_id=self.pid,
                producer_epoch=self.epoch,
                group_id=group_id,
            )
            return [r.error_code], r.error_code

        return self._retrying("AddOffsetsToTxn", send)

    def end(self, commit):
        def send():
            r = self.coordinator.call(
                EndTxnRequest,
                EndTxnResponse,
                END_TXN_VERSION,
                transactional_id=self.txn_id,
                producer_id=self.pid,
                producer_epoch=self.epoch,
                committed=commit,
            )
            return [r.error_code], r.error_code

        return self._retrying("EndTxn", send)

    def end_v2(self, commit, epoch):
        """EndTxn v5 (transaction.version 2) with the given epoch; returns
        (error code, producer id, producer epoch) of the answer. Does not
        change this producer's epoch."""

        def send():
            r = self.coordinator.call(
                EndTxnRequest,
                EndTxnResponse,
                V2_END_TXN_VERSION,
                transactional_id=self.txn_id,
                producer_id=self.pid,
                producer_epoch=epoch,
                committed=commit,
            )
            log(f"EndTxn v{V2_END_TXN_VERSION} commit={commit} epoch {epoch}: {error_name(r.error_code)},"
                f" producer id {r.producer_id} epoch {r.producer_epoch}")
            return [r.error_code], (r.error_code, r.producer_id, r.producer_epoch)

        return self._retrying("EndTxn", send)

    def produce(self, leader, topic, sequence, transactional_id=..., version=PRODUCE_VERSION):
        """Produces one transactional batch of one record with the given
        base sequence to partition 0 at the given Produce version; returns
        (error code, base offset). transactional_id is the request's field
        (this producer's by default)."""
        if transactional_id is ...:
            transactional_id = self.txn_id
        builder = DefaultRecordBatchBuilder(
            magic=2,
            compression_type=0,
            is_transactional=True,
            producer_id=self.pid,
            producer_epoch=self.epoch,
            base_sequence=sequence,
            batch_size=1 << 20,
        )
        builder.append(0, timestamp=None, key=b"k", value=f"v{sequence}".encode(), headers=[])
        records = bytes(builder.build())
        T = ProduceRequest.TopicProduceData
        P = T.PartitionProduceData

        def send():
            r = leader.call(
                ProduceRequest,
                ProduceResponse,
                version,
                transactional_id=transactional_id,
                acks=-1,
                timeout_ms=30000,
                topic_data=[T(name=topic, partition_data=[P(index=0, records=records)])],
            )
            ps = [p for t in r.responses for p in t.partition_responses]
            expect(len(ps) == 1, f"Produce answered {len(ps)} partitions")
            p = ps[0]
            if p.error_code != NONE:
                log(f"Produce v{version} seq {sequence}: {error_name(p.error_code)} ({p.error_message})")
            return [p.error_code], (p.error_code, p.base_offset)

        return self._retrying("Produce", send, also=(NOT_ENOUGH_REPLICAS,))


# --- one consumer group's offsets, by hand


class Group(Coordinated):
    """The offsets of one consumer group that has no members (a producer
    commits them in its transaction, outside any generation); its
    coordinator is the group coordinator."""

    KEY_TYPE = 0

    def __init__(self, cluster, group_id):
        super().__init__(cluster, group_id)
        self.group_id = group_id

    def txn_commit(self, txn, topic, offset, version=TXN_OFFSET_COMMIT_VERSION):
        """TxnOffsetCommit of offset for partition 0 of topic in txn's
        transaction (no member: member id "", generation -1, no group
        instance id) at the given version; returns its partition's error
        code."""
        T = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic
        P = T.TxnOffsetCommitRequestPartition
        partition = P(partition_index=0, committed_offset=offset, committed_leader_epoch=-1, committed_metadata="")

        def send():
            r = self.coordinator.call(
                TxnOffsetCommitRequest,
                TxnOffsetCommitResponse,
                version,
                transactional_id=txn.txn_id,
                group_id=self.group_id,
                producer_id=txn.pid,
                producer_epoch=txn.epoch,
                generation_id=-1,
                member_id="",
                group_instance_id=None,
                topics=[T(name=topic, partitions=[partition])],
            )
            codes = [p.error_code for t in r.topics for p in t.partitions]
            expect(len(codes) == 1, f"TxnOffsetCommit answered {len(codes)} partitions")
            if codes[0] != NONE:
                log(f"TxnOffsetCommit v{version} offset {offset}: {error_name(codes[0])}")
            return codes, codes[0]

        return self._retrying("TxnOffsetCommit", send)

    def fetch(self, topic, require_stable):
        """OffsetFetch of partition 0 of topic; returns (error code, committed
        offset). Retries the coordinator's errors, not
        UNSTABLE_OFFSET_COMMIT."""
        T = OffsetFetchRequest.OffsetFetchRequestTopic

        def send():
            r = self.coordinator.call(
                OffsetFetchRequest,
                OffsetFetchResponse,
                OFFSET_FETCH_VERSION,
                group_id=self.group_id,
                topics=[T(name=topic, partition_indexes=[0])],
                require_stable=require_stable,
            )
            if r.error_code != NONE:
                return [r.error_code], (r.error_code, -1)
            ps = [p for t in r.topics for p in t.partitions]
            expect(len(ps) == 1, f"OffsetFetch answered {len(ps)} partitions")
            return [ps[0].error_code], (ps[0].error_code, ps[0].committed_offset)

        return self._retrying("OffsetFetch", send)

    def wait_committed(self, topic):
        """Waits until OffsetFetch with require_stable answers a committed
        offset (no error, not -1) for partition 0 of topic, retrying
        UNSTABLE_OFFSET_COMMIT (a transactional commit whose markers are not
        written yet); returns it."""
        deadline = time.time() + WAIT
        while True:
            code, offset = self.fetch(topic, require_stable=True)
            if code == NONE and offset >= 0:
                return offset
            expect(code in (NONE, UNSTABLE_OFFSET_COMMIT), f"OffsetFetch: {error_name(code)}")
            if time.time() > deadline:
                raise Expectation(f"OffsetFetch still {error_name(code)}, offset {offset} after {WAIT} s")
            log(f"OffsetFetch: {error_name(code)}, offset {offset}, waiting")
            time.sleep(0.1)


# --- scenarios


def setup(bootstrap, prefix, topic_suffix="t"):
    cluster = Cluster(bootstrap)
    topic = f"{prefix}-{topic_suffix}"
    cluster.create_topic(topic)
    leader = cluster.leader(topic)
    txn = Txn(cluster, f"{prefix}-tx")
    txn.find_coordinator()
    txn.init()
    return cluster, topic, leader, txn


def unadded(bootstrap, prefix):
    _, topic, leader, txn = setup(bootstrap, prefix)
    for version in (PRODUCE_VERSION, OLD_PRODUCE_VERSION):
        code, _ = txn.produce(leader, topic, 0, version=version)
        out(f"produce v{version} without AddPartitionsToTxn: {error_name(code)}")
        expect(code != NONE, "a transactional batch of a partition not in the transaction was accepted")
    e = ends(leader, topic)
    out(ends_line("end offsets after the refused produce", e))
    expect(e == (0, 0), f"the refused produce left the end offsets at {e}")

    code = txn.add_partition(topic, 0)
    out(f"AddPartitionsToTxn: {error_name(code)}")
    expect(code == NONE, "AddPartitionsToTxn failed")
    code, offset = txn.produce(leader, topic, 0)
    out(f"produce after AddPartitionsToTxn: {error_name(code)}, base offset {offset}")
    expect(code == NONE, "the produce after AddPartitionsToTxn failed")
    code = txn.end(commit=True)
    out(f"EndTxn commit: {error_name(code)}")
    expect(code == NONE, "EndTxn commit failed")
    out(ends_line("end offsets after the commit", wait_stable(leader, topic)))


def late(bootstrap, prefix):
    _, topic, leader, txn = setup(bootstrap, prefix)
    code = txn.add_partition(topic, 0)
    out(f"AddPartitionsToTxn: {error_name(code)}")
    expect(code == NONE, "AddPartitionsToTxn failed")
    code, offset = txn.produce(leader, topic, 0)
    out(f"produce seq 0: {error_name(code)}, base offset {offset}")
    expect(code == NONE, "the produce failed")
    code = txn.end(commit=True)
    out(f"EndTxn commit: {error_name(code)}")
    expect(code == NONE, "EndTxn commit failed")
    out(ends_line("end offsets after the commit", wait_stable(leader, topic)))

    for version in (PRODUCE_VERSION, OLD_PRODUCE_VERSION):
        code, _ = txn.produce(leader, topic, 1, version=version)
        out(f"late produce v{version} seq 1 after the commit: {error_name(code)}")
        expect(code != NONE, "a transactional batch produced after the commit was accepted")
    first = ends(leader, topic)
    log("end offsets right after the late produce:", first)
    time.sleep(2)
    last = ends(leader, topic)
    out(ends_line("end offsets after the late produce", last))
    expect(first[0] == first[1] and last[0] == last[1], f"a transaction was left open: {first}, then {last}")


def no_id(bootstrap, prefix):
    _, topic, leader, txn = setup(bootstrap, prefix)
    code = txn.add_partition(topic, 0)
    out(f"AddPartitionsToTxn: {error_name(code)}")
    expect(code == NONE, "AddPartitionsToTxn failed")
    code, _ = txn.produce(leader, topic, 0, transactional_id=None)
    out(f"produce without a transactional id: {error_name(code)}")
    expect(code != NONE, "a transactional batch without a transactional id was accepted")
    code = txn.end(commit=False)
    out(f"EndTxn abort: {error_name(code)}")
    expect(code == NONE, "EndTxn abort failed")
    # The partition has no open transaction at its leader (nothing was
    # appended), so its end offsets are equal before the abort marker is
    # written too; InitProducerId is answered CONCURRENT_TRANSACTIONS
    # (retried) until the coordinator has written the markers.
    txn.init()
    out("InitProducerId after the abort: NO_ERROR")
    out(ends_line("end offsets after the abort", wait_stable(leader, topic)))


def offsets_setup(bootstrap, prefix):
    """A transaction with one batch written to PREFIX-in; returns it, its
    topic and group PREFIX-g, its coordinator found."""
    cluster, topic, leader, txn = setup(bootstrap, prefix, "in")
    code = txn.add_partition(topic, 0)
    out(f"AddPartitionsToTxn: {error_name(code)}")
    expect(code == NONE, "AddPartitionsToTxn failed")
    code, offset = txn.produce(leader, topic, 0)
    out(f"produce seq 0: {error_name(code)}, base offset {offset}")
    expect(code == NONE, "the produce failed")
    group = Group(cluster, f"{prefix}-g")
    group.find_coordinator()
    return txn, topic, group


def offsets_commit(txn, topic, group):
    """The normal path: AddOffsetsToTxn, TxnOffsetCommit of offset 1, the
    commit, and the committed offset once it is stable."""
    code = txn.add_offsets(group.group_id)
    out(f"AddOffsetsToTxn: {error_name(code)}")
    expect(code == NONE, "AddOffsetsToTxn failed")
    code = group.txn_commit(txn, topic, 1)
    out(f"TxnOffsetCommit v{TXN_OFFSET_COMMIT_VERSION} offset 1 after AddOffsetsToTxn: {error_name(code)}")
    expect(code == NONE, "the TxnOffsetCommit after AddOffsetsToTxn failed")
    code = txn.end(commit=True)
    out(f"EndTxn commit: {error_name(code)}")
    expect(code == NONE, "EndTxn commit failed")
    offset = group.wait_committed(topic)
    out(f"committed offset: {offset}")
    expect(offset == 1, f"committed offset {offset}, expected 1")


def offsets_unadded(bootstrap, prefix):
    txn, topic, group = offsets_setup(bootstrap, prefix)
    for version in (TXN_OFFSET_COMMIT_VERSION, NEW_TXN_OFFSET_COMMIT_VERSION):
        code = group.txn_commit(txn, topic, 1, version=version)
        out(f"TxnOffsetCommit v{version} offset 1 without AddOffsetsToTxn: {error_name(code)}")
        expect(code != NONE, "a transactional offset commit of a group not in the transaction was accepted")
    offsets_commit(txn, topic, group)


def offsets_late(bootstrap, prefix):
    txn, topic, group = offsets_setup(bootstrap, prefix)
    offsets_commit(txn, topic, group)

    for version in (NEW_TXN_OFFSET_COMMIT_VERSION, TXN_OFFSET_COMMIT_VERSION):
        code = group.txn_commit(txn, topic, 5, version=version)
        out(f"late TxnOffsetCommit v{version} offset 5 after the commit: {error_name(code)}")
        expect(code != NONE, "a transactional offset commit sent after the commit was accepted")
    time.sleep(2)
    code, offset = group.fetch(topic, require_stable=False)
    expect(code == NONE, f"OffsetFetch: {error_name(code)}")
    out(f"committed offset after the late commit: {offset}")
    code, _ = group.fetch(topic, require_stable=True)
    out(f"OffsetFetch require_stable after the late commit: {error_name(code)}")
    expect(offset == 1 and code == NONE, "the late commit left a pending offset or changed the committed one")


def id_epoch(txn, base_epoch, pid, epoch):
    """An EndTxn v5 answer's producer id and epoch, without ids: whether
    the id is txn's, the epoch relative to base_epoch (-1 as it is)."""
    if pid == txn.pid:
        who = "the same producer id"
    elif pid == -1:
        who = "producer id -1"
    else:
        who = "another producer id"
    return f"{who}, epoch {'-1' if epoch == -1 else f'{epoch - base_epoch:+d}'}"


def version2(bootstrap, prefix):
    _, topic, leader, txn = setup(bootstrap, prefix, "v2")
    e = txn.epoch
    code, offset = txn.produce(leader, topic, 0, version=V2_PRODUCE_VERSION)
    out(f"produce v{V2_PRODUCE_VERSION} epoch +0 seq 0 without AddPartitionsToTxn: {error_name(code)}, base offset {offset}")
    expect(code == NONE, "the transaction.version 2 produce without AddPartitionsToTxn failed")
    code, pid, epoch = txn.end_v2(True, e)
    out(f"EndTxn v{V2_END_TXN_VERSION} commit epoch +0: {error_name(code)}, {id_epoch(txn, e, pid, epoch)}")
    expect(code == NONE, "EndTxn commit failed")
    code, pid, epoch = txn.end_v2(True, e)
    out(f"EndTxn v{V2_END_TXN_VERSION} commit epoch +0 again (a retry): {error_name(code)}, {id_epoch(txn, e, pid, epoch)}")
    before = wait_stable(leader, topic)
    out(ends_line("end offsets after the commit", before))

    code, _ = txn.produce(leader, topic, 1, version=V2_PRODUCE_VERSION)
    out(f"zombie produce v{V2_PRODUCE_VERSION} epoch +0 seq 1 after the commit: {error_name(code)}")
    expect(code != NONE, "a batch with the epoch before the commit's bump was accepted")
    after = ends(leader, topic)
    out(ends_line("end offsets after the zombie produce", after))
    expect(after == before, f"the zombie produce moved the end offsets from {before} to {after}")

    txn.epoch = e + 1
    code, offset = txn.produce(leader, topic, 0, version=V2_PRODUCE_VERSION)
    out(f"produce v{V2_PRODUCE_VERSION} epoch +1 seq 0: {error_name(code)}, base offset {offset}")
    expect(code == NONE, "the produce of the next transaction failed")
    code, pid, epoch = txn.end_v2(False, e + 1)
    out(f"EndTxn v{V2_END_TXN_VERSION} abort epoch +1: {error_name(code)}, {id_epoch(txn, e, pid, epoch)}")
    expect(code == NONE, "EndTxn abort failed")
    code, pid, epoch = txn.end_v2(False, e + 2)
    out(f"EndTxn v{V2_END_TXN_VERSION} abort epoch +2 with nothing produced: {error_name(code)}, {id_epoch(txn, e, pid, epoch)}")
    expect(code == NONE, "the empty abort failed")
    code, pid, epoch = txn.end_v2(True, e + 3)
    out(f"EndTxn v{V2_END_TXN_VERSION} commit epoch +3 with nothing ongoing: {error_name(code)}, {id_epoch(txn, e, pid, epoch)}")
    expect(code != NONE, "a commit with no transaction ongoing was accepted")
    out(ends_line("end offsets at the end", wait_stable(leader, topic)))


def offsets_version2(bootstrap, prefix):
    cluster, topic, leader, txn = setup(bootstrap, prefix, "in")
    e = txn.epoch
    code, offset = txn.produce(leader, topic, 0, version=V2_PRODUCE_VERSION)
    out(f"produce v{V2_PRODUCE_VERSION} seq 0 without AddPartitionsToTxn: {error_name(code)}, base offset {offset}")
    expect(code == NONE, "the transaction.version 2 produce without AddPartitionsToTxn failed")
    group = Group(cluster, f"{prefix}-g")
    group.find_coordinator()
    code = group.txn_commit(txn, topic, 1, version=V2_TXN_OFFSET_COMMIT_VERSION)
    out(f"TxnOffsetCommit v{V2_TXN_OFFSET_COMMIT_VERSION} offset 1 without AddOffsetsToTxn: {error_name(code)}")
    expect(code == NONE, "the transaction.version 2 TxnOffsetCommit without AddOffsetsToTxn failed")
    code, pid, epoch = txn.end_v2(True, e)
    out(f"EndTxn v{V2_END_TXN_VERSION} commit: {error_name(code)}, {id_epoch(txn, e, pid, epoch)}")
    expect(code == NONE, "EndTxn commit failed")
    offset = group.wait_committed(topic)
    out(f"committed offset: {offset}")
    expect(offset == 1, f"committed offset {offset}, expected 1")


SCENARIOS = {
    "unadded": unadded,
    "late": late,
    "no-id": no_id,
    "offsets-unadded": offsets_unadded,
    "offsets-late": offsets_late,
    "version2": version2,
    "offsets-version2": offsets_version2,
}


def main(argv):
    if len(argv) != 4 or argv[1] not in SCENARIOS:
        print(__doc__, file=sys.stderr)
        print(f"scenarios: {' '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    SCENARIOS[argv[1]](argv[2], argv[3])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
