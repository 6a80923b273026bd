#!/usr/bin/env python3
"""Consumer-group protocol edge cases, sent as raw requests.

Usage: python3 group_edges.py BOOTSTRAP GROUP TOPIC

Speaks the classic group protocol (FindCoordinator, JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch, OffsetDelete,
DescribeGroups, ListGroups, DeleteGroups) over one plain TCP connection,
encoding and decoding with kafka-python's protocol classes, and prints one
line per case: `PASS CASE ERROR_CODE [deterministic fields]`. No member id,
host or other random value is printed, so the output can be compared with
the output recorded against Apache Kafka (expected/group_edges.txt).

The whole list runs twice: pass `low` uses the newest non-flexible version
of each API (the versions librdkafka speaks: JoinGroup v5, SyncGroup v3,
Heartbeat v3, LeaveGroup v3, OffsetCommit v7, OffsetFetch v7, ...), pass
`high` uses flexible versions (JoinGroup v9, SyncGroup v5, Heartbeat v4,
LeaveGroup v5, OffsetCommit v9, OffsetFetch v9 with its groups array, ...).
Every group is GROUP-PASS-SUFFIX, so the two passes do not meet. TOPIC is
created with 2 partitions (CreateTopics through confluent-kafka's admin
client) unless it exists.

Everything is bounded: each response is awaited at most 40 s (a JoinGroup
may wait for group.initial.rebalance.delay.ms, 3 s by default in Kafka),
and a failure raises, so the process exits non-zero with a traceback.
"""
import struct
import sys
import time

from kafka.protocol.admin.groups import (
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
)
from kafka.protocol.consumer.group import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata.find_coordinator import FindCoordinatorRequest, FindCoordinatorResponse
from raw_conn import Conn

RESPONSE_TIMEOUT = 40.0
SESSION_MS = 10000
REBALANCE_MS = 10000

VERSIONS = {
    "low": dict(find=2, join=5, sync=3, hb=3, leave=3, commit=7, fetch=7, delete=1, describe=4, list=4, offdel=0),
    "high": dict(find=4, join=9, sync=5, hb=4, leave=5, commit=9, fetch=9, delete=2, describe=6, list=5, offdel=0),
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def out(*args):
    print(*args, flush=True)


# --- the consumer protocol's subscription and assignment (version 0)


def _str(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def subscription(topics):
    return struct.pack(">hi", 0, len(topics)) + b"".join(_str(t) for t in topics) + struct.pack(">i", -1)


def assignment(parts):
    """parts: {topic: [partition, ...]}"""
    body = struct.pack(">hi", 0, len(parts))
    for topic, ps in parts.items():
        body += _str(topic) + struct.pack(">i", len(ps)) + b"".join(struct.pack(">i", p) for p in ps)
    return body + struct.pack(">i", -1)


class Pass:
    def __init__(self, conn, name, group, topic):
        self.c = conn
        self.name = name
        self.v = VERSIONS[name]
        self.prefix = f"{group}-{name}"
        self.topic = topic

    def g(self, suffix):
        return f"{self.prefix}-{suffix}"

    def line(self, case, code, *fields):
        out(self.name, case, code, *fields)

    # -- requests

    def find(self, group):
        v = self.v["find"]
        if v >= 4:
            r = self.c.call(FindCoordinatorRequest, FindCoordinatorResponse, v, key_type=0, coordinator_keys=[group])
            (co,) = r.coordinators
            return co.error_code
        r = self.c.call(FindCoordinatorRequest, FindCoordinatorResponse, v, key=group, key_type=0)
        return r.error_code

    def find_ready(self, group):
        """FindCoordinator, then an OffsetFetch for the group, until neither
        says COORDINATOR_LOAD_IN_PROGRESS (14), COORDINATOR_NOT_AVAILABLE (15)
        or NOT_COORDINATOR (16): Kafka answers so while it creates
        __consumer_offsets and while it loads the group's partition of it,
        and a client retries. Returns FindCoordinator's last error."""
        end = time.monotonic() + 30
        while True:
            code = self.find(group)
            if code not in (14, 15, 16):
                probe, _ = self.fetch(group)
                if probe not in (14, 15, 16):
                    return code
            if time.monotonic() > end:
                raise TimeoutError(f"the coordinator of {group} is not ready: {code}")
            time.sleep(0.2)

    def join(self, group, member_id="", instance=None, session=SESSION_MS, ptype="consumer", topics=None):
        P = JoinGroupRequest.JoinGroupRequestProtocol
        protocols = [P(name="range", metadata=subscription(topics or [self.topic]))]
        kw = dict(
            group_id=group,
            session_timeout_ms=session,
            rebalance_timeout_ms=REBALANCE_MS,
            member_id=member_id,
            group_instance_id=instance,
            protocol_type=ptype,
            protocols=protocols,
        )
        if self.v["join"] >= 8:
            kw["reason"] = None
        return self.c.call(JoinGroupRequest, JoinGroupResponse, self.v["join"], **kw)

    def sync(self, group, generation, member_id, instance=None, assignments=None):
        A = SyncGroupRequest.SyncGroupRequestAssignment
        kw = dict(
            group_id=group,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=instance,
            assignments=[A(member_id=m, assignment=a) for m, a in (assignments or {}).items()],
        )
        if self.v["sync"] >= 5:
            kw.update(protocol_type="consumer", protocol_name="range")
        return self.c.call(SyncGroupRequest, SyncGroupResponse, self.v["sync"], **kw)

    def heartbeat(self, group, generation, member_id, instance=None):
        r = self.c.call(
            HeartbeatRequest,
            HeartbeatResponse,
            self.v["hb"],
            group_id=group,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=instance,
        )
        return r.error_code

    def leave(self, group, member_id, instance=None):
        """Returns (top-level error, [member errors])."""
        M = LeaveGroupRequest.MemberIdentity
        m = M(member_id=member_id, group_instance_id=instance)
        if self.v["leave"] >= 5:
            m = M(member_id=member_id, group_instance_id=instance, reason=None)
        r = self.c.call(LeaveGroupRequest, LeaveGroupResponse, self.v["leave"], group_id=group, members=[m])
        return r.error_code, [x.error_code for x in r.members]

    def commit(self, group, generation, member_id, offsets, instance=None):
        """offsets: {partition: offset}; returns the partition error codes in
        partition order."""
        T = OffsetCommitRequest.OffsetCommitRequestTopic
        P = T.OffsetCommitRequestPartition
        parts = [
            P(partition_index=p, committed_offset=o, committed_leader_epoch=-1, committed_metadata="")
            for p, o in sorted(offsets.items())
        ]
        r = self.c.call(
            OffsetCommitRequest,
            OffsetCommitResponse,
            self.v["commit"],
            group_id=group,
            generation_id_or_member_epoch=generation,
            member_id=member_id,
            group_instance_id=instance,
            topics=[T(name=self.topic, partitions=parts)],
        )
        return [p.error_code for t in r.topics for p in sorted(t.partitions, key=lambda p: p.partition_index)]

    def fetch(self, group, partitions=(0, 1), all_topics=False):
        """Returns (group error, [(partition, offset, error)])."""
        v = self.v["fetch"]
        if v >= 8:
            G = OffsetFetchRequest.OffsetFetchRequestGroup
            T = G.OffsetFetchRequestTopics
            topics = None if all_topics else [T(name=self.topic, partition_indexes=list(partitions))]
            r = self.c.call(
                OffsetFetchRequest,
                OffsetFetchResponse,
                v,
                groups=[G(group_id=group, member_id=None, member_epoch=-1, topics=topics)],
                require_stable=True,
            )
            (rg,) = r.groups
            err, topics = rg.error_code, rg.topics
        else:
            T = OffsetFetchRequest.OffsetFetchRequestTopic
            topics = None if all_topics else [T(name=self.topic, partition_indexes=list(partitions))]
            r = self.c.call(OffsetFetchRequest, OffsetFetchResponse, v, group_id=group, topics=topics, require_stable=True)
            err, topics = r.error_code, r.topics
        got = [
            (p.partition_index, p.committed_offset, p.error_code)
            for t in topics
            if t.name == self.topic
            for p in sorted(t.partitions, key=lambda p: p.partition_index)
        ]
        return err, got

    def offset_delete(self, group, partitions=(0,)):
        T = OffsetDeleteRequest.OffsetDeleteRequestTopic
        P = T.OffsetDeleteRequestPartition
        r = self.c.call(
            OffsetDeleteRequest,
            OffsetDeleteResponse,
            self.v["offdel"],
            group_id=group,
            topics=[T(name=self.topic, partitions=[P(partition_index=p) for p in partitions])],
        )
        return r.error_code, [p.error_code for t in r.topics for p in t.partitions]

    def describe(self, group):
        r = self.c.call(
            DescribeGroupsRequest, DescribeGroupsResponse, self.v["describe"], groups=[group], include_authorized_operations=False
        )
        (d,) = r.groups
        return d

    def list_groups(self):
        kw = dict(states_filter=[])
        if self.v["list"] >= 5:
            kw["types_filter"] = []
        r = self.c.call(ListGroupsRequest, ListGroupsResponse, self.v["list"], **kw)
        return r.error_code, {g.group_id: g for g in r.groups}

    def delete(self, group):
        r = self.c.call(DeleteGroupsRequest, DeleteGroupsResponse, self.v["delete"], groups_names=[group])
        (res,) = r.results
        return res.error_code

    # -- the cases

    def run(self):
        t = self.topic
        g = self.g("main")
        self.line("find-coordinator", self.find_ready(g))

        # A dynamic member's first JoinGroup (v4+) without a member id is
        # refused with MEMBER_ID_REQUIRED and a member id to use.
        r = self.join(g, "")
        member = r.member_id
        self.line("join-member-id-required", r.error_code, "member-id-given", bool(member), "generation", r.generation_id)
        r = self.join(g, member)
        gen = r.generation_id
        self.line(
            "join-with-given-id",
            r.error_code,
            "generation",
            gen,
            "protocol",
            r.protocol_name,
            "leader-is-self",
            r.leader == member,
            "same-member-id",
            r.member_id == member,
            "members",
            len(r.members),
            "member-metadata-echoed",
            [m.metadata == subscription([t]) for m in r.members],
        )
        mine = assignment({t: [0, 1]})
        r = self.sync(g, gen, member, assignments={member: mine})
        self.line("sync-leader", r.error_code, "assignment-echoed", r.assignment == mine)
        self.line("heartbeat", self.heartbeat(g, gen, member))
        self.line("heartbeat-unknown-member", self.heartbeat(g, gen, "nobody"))
        self.line("heartbeat-wrong-generation", self.heartbeat(g, gen + 7, member))
        self.find_ready(self.g("nogroup"))
        self.line("heartbeat-unknown-group", self.heartbeat(self.g("nogroup"), 1, "nobody"))
        r = self.sync(g, gen + 7, member, assignments={member: mine})
        self.line("sync-wrong-generation", r.error_code)
        r = self.sync(g, gen, "nobody")
        self.line("sync-unknown-member", r.error_code)

        r = self.join(g, "nobody")
        self.line("join-unknown-member-id", r.error_code)
        self.find_ready(self.g("timeout"))
        r = self.join(self.g("timeout"), "", session=1000)
        self.line("join-session-timeout-too-small", r.error_code)
        r = self.join(self.g("timeout"), "", session=1800001)
        self.line("join-session-timeout-too-large", r.error_code)
        r = self.join(g, "", ptype="other")
        self.line("join-inconsistent-protocol-type", r.error_code)
        r = self.join("", "")
        self.line("join-empty-group-id", r.error_code)

        self.line("commit-member", self.commit(g, gen, member, {0: 5, 1: 7}))
        self.line("commit-unknown-member", self.commit(g, gen, "nobody", {0: 9}))
        self.line("commit-wrong-generation", self.commit(g, gen + 7, member, {0: 9}))
        self.line("commit-admin-on-non-empty-group", self.commit(g, -1, "", {0: 9}))
        self.line("fetch", *self.fetch(g))
        self.line("fetch-all-topics", *self.fetch(g, all_topics=True))
        self.find_ready(self.g("unknown"))
        self.line("fetch-unknown-group", *self.fetch(self.g("unknown")))
        self.line("fetch-unknown-partition", *self.fetch(g, partitions=(7,)))

        d = self.describe(g)
        self.line(
            "describe",
            d.error_code,
            "state",
            d.group_state,
            "type",
            d.protocol_type,
            "protocol",
            d.protocol_data,
            "members",
            len(d.members),
            "client",
            [m.client_id for m in d.members],
            "assignment-echoed",
            [m.member_assignment == mine for m in d.members],
            "metadata-echoed",
            [m.member_metadata == subscription([t]) for m in d.members],
        )
        d = self.describe(self.g("unknown"))
        self.line("describe-unknown-group", d.error_code, "state", d.group_state, "members", len(d.members))
        err, groups = self.list_groups()
        lg = groups.get(g)
        self.line(
            "list-groups",
            err,
            "listed",
            lg is not None,
            "type",
            lg and lg.protocol_type,
            "state",
            lg and getattr(lg, "group_state", None),
        )

        self.line("offset-delete-subscribed-topic", *self.offset_delete(g))
        self.line("delete-non-empty-group", self.delete(g))
        self.line("delete-unknown-group", self.delete(self.g("unknown")))
        self.line("leave-unknown-member", *self.leave(g, "nobody"))
        self.line("leave", *self.leave(g, member))
        d = self.describe(g)
        self.line("describe-after-leave", d.error_code, "state", d.group_state, "members", len(d.members))
        self.line("heartbeat-after-leave", self.heartbeat(g, gen, member))
        self.line("commit-admin-on-empty-group", self.commit(g, -1, "", {1: 11}))
        self.line("commit-old-generation-on-empty-group", self.commit(g, gen, member, {1: 12}))
        self.line("fetch-after-admin-commit", *self.fetch(g))
        self.line("offset-delete-empty-group", *self.offset_delete(g))
        self.line("fetch-after-offset-delete", *self.fetch(g))
        self.line("delete-empty-group", self.delete(g))
        self.line("fetch-after-delete", *self.fetch(g))
        self.line("delete-deleted-group", self.delete(g))

        # Offsets committed with generation -1 by no member (as admin
        # clients do) create a group that never had a member.
        ga = self.g("admin")
        self.find_ready(ga)
        self.find_ready(self.g("ghost"))
        self.line("commit-admin-new-group", self.commit(ga, -1, "", {0: 3}))
        self.line("fetch-admin-new-group", *self.fetch(ga))
        d = self.describe(ga)
        self.line("describe-admin-new-group", d.error_code, "state", d.group_state, "type", repr(d.protocol_type))
        self.line("commit-member-new-group", self.commit(self.g("ghost"), 1, "ghost", {0: 3}))

        self.static()

    def static(self):
        """Static membership: a new member id for a known group.instance.id
        replaces the old member, whose id is then fenced."""
        t = self.topic
        g = self.g("static")
        self.find_ready(g)
        r = self.join(g, "", instance="inst-1")
        old, gen = r.member_id, r.generation_id
        self.line("static-join", r.error_code, "member-id-given", bool(old), "generation", gen, "leader-is-self", r.leader == old)
        mine = assignment({t: [0, 1]})
        r = self.sync(g, gen, old, instance="inst-1", assignments={old: mine})
        self.line("static-sync", r.error_code, "assignment-echoed", r.assignment == mine)
        self.line("static-heartbeat", self.heartbeat(g, gen, old, instance="inst-1"))

        # The same instance id joins again without a member id (a restarted
        # process): it gets a new member id at once.
        r = self.join(g, "", instance="inst-1")
        new, gen2 = r.member_id, r.generation_id
        fields = [
            "new-member-id",
            bool(new) and new != old,
            "generation",
            gen2,
            "leader-is-self",
            r.leader == new,
            "members",
            len(r.members),
            "protocol",
            r.protocol_name,
        ]
        if self.v["join"] >= 9:
            fields += ["skip-assignment", r.skip_assignment]
        self.line("static-rejoin", r.error_code, *fields)
        r = self.sync(g, gen2, new, instance="inst-1", assignments={new: mine})
        self.line("static-rejoin-sync", r.error_code, "assignment-kept", r.assignment == mine)

        self.line("static-heartbeat-old-member", self.heartbeat(g, gen2, old, instance="inst-1"))
        self.line("static-heartbeat-new-member", self.heartbeat(g, gen2, new, instance="inst-1"))
        r = self.sync(g, gen2, old, instance="inst-1", assignments={old: mine})
        self.line("static-sync-old-member", r.error_code)
        self.line("static-commit-old-member", self.commit(g, gen2, old, {0: 1}, instance="inst-1"))
        self.line("static-commit-new-member", self.commit(g, gen2, new, {0: 2}, instance="inst-1"))
        r = self.join(g, old, instance="inst-1")
        self.line("static-join-old-member", r.error_code)
        self.line("static-leave-old-member", *self.leave(g, old, instance="inst-1"))
        d = self.describe(g)
        self.line(
            "static-describe",
            d.error_code,
            "state",
            d.group_state,
            "members",
            len(d.members),
            "instances",
            [m.group_instance_id for m in d.members],
        )
        # A static member leaves with its instance id and the unknown-member id.
        self.line("static-leave-by-instance", *self.leave(g, "", instance="inst-1"))
        d = self.describe(g)
        self.line("static-describe-after-leave", d.error_code, "state", d.group_state, "members", len(d.members))


def ensure_topic(bootstrap, topic):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)], request_timeout=30)[topic].result(30)
    except KafkaException as e:
        if e.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    bootstrap, group, topic = sys.argv[1:]
    ensure_topic(bootstrap, topic)
    started = time.monotonic()
    for name in ("low", "high"):
        conn = Conn.to(bootstrap, "group-edges", RESPONSE_TIMEOUT)
        try:
            Pass(conn, name, group, topic).run()
        finally:
            conn.sock.close()
    log(f"group_edges: done in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
