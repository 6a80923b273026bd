//! Consumer groups against the real broker: committed offsets that survive
//! SIGKILL and compaction of `__consumer_offsets`, the `sluice group` tool,
//! and (in `group_scenarios`) real clients sharing partitions, rebalancing,
//! resuming and static membership.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    kafka, python_interpreter, run, topic, wait_for_metric, Broker, Spawned, Stream,
    CLIENT_TIMEOUT, PY_HELPERS,
};

fn run_python(broker: &Broker, snippet: &str, args: &[&str]) -> Vec<String> {
    run_python_at(&broker.bootstrap(), snippet, args, CLIENT_TIMEOUT)
}

/// The lines a snippet printed against any broker (a Kafka node too);
/// it must succeed.
fn run_python_at(bootstrap: &str, snippet: &str, args: &[&str], timeout: Duration) -> Vec<String> {
    let out = common::python_at(bootstrap, snippet, args, timeout);
    out.assert_success();
    out.stdout_text().lines().map(str::to_owned).collect()
}

/// Commits with librdkafka as a consumer outside any group generation
/// (what a consumer with manual assignment does), ROUNDS times over 4
/// partitions, then prints the committed offsets.
const COMMIT_ROUNDS: &str = r#"
import time
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
topic, group, rounds = ARGS[0], ARGS[1], int(ARGS[2])
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
for r in range(rounds):
    offsets = [TopicPartition(topic, p, r * 10 + p) for p in range(4)]
    deadline = Deadline(30, "a commit past the coordinator's load")
    while True:
        try:
            c.commit(offsets=offsets, asynchronous=False)
            break
        except KafkaException as e:
            # While __consumer_offsets, just created, opens on every shard
            # a commit may meet COORDINATOR_LOAD_IN_PROGRESS, as during a
            # Kafka coordinator's load; librdkafka gives up after two
            # retries, so the script retries.
            if e.args[0].code() != KafkaError.COORDINATOR_LOAD_IN_PROGRESS:
                raise
            deadline.check()
            time.sleep(0.05)
got = c.committed([TopicPartition(topic, p) for p in range(4)], timeout=30)
print("committed", [tp.offset for tp in got])
c.close()
"#;

const READ_COMMITTED: &str = r#"
from confluent_kafka import Consumer, TopicPartition
topic, group = ARGS[0], ARGS[1]
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False})
got = c.committed([TopicPartition(topic, p) for p in range(4)], timeout=30)
print("committed", [tp.offset for tp in got])
c.close()
"#;

#[test]
fn acknowledged_commits_survive_sigkill_and_compaction() {
    // One small offsets partition: 500 commit rounds write ~150 KiB in
    // segments of 16 KiB, which the log cleaner compacts to the last
    // record of each key while commits go on.
    let mut broker = Broker::start_with_env(&[
        ("SLUICE_GROUP__OFFSETS_TOPIC_NUM_PARTITIONS", "1"),
        ("SLUICE_GROUP__OFFSETS_TOPIC_SEGMENT_BYTES", "16384"),
        ("SLUICE_LOG__CLEANER_BACKOFF_MS", "100"),
    ]);
    let (t, g) = (topic("commits"), topic("group"));
    let out = run_python(&broker, COMMIT_ROUNDS, &[&t, &g, "500"]);
    assert_eq!(out, ["committed [4990, 4991, 4992, 4993]"]);
    let removed = wait_for_metric(
        &broker,
        "sluice_log_cleaner_bytes_removed_total",
        Duration::from_secs(30),
        |bytes| bytes >= 64 * 1024,
    );
    assert!(removed >= 64 * 1024, "the cleaner removed {removed} bytes");
    broker.kill();
    broker.restart();
    let out = run_python(&broker, READ_COMMITTED, &[&t, &g]);
    assert_eq!(out, ["committed [4990, 4991, 4992, 4993]"]);
}

fn sluice(args: &[&str]) -> common::CmdOutput {
    run(
        Command::new(env!("CARGO_BIN_EXE_sluice")).args(args),
        b"",
        CLIENT_TIMEOUT,
    )
}

#[test]
fn the_group_tool_lists_describes_resets_and_deletes() {
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let (t, g) = (topic("tool"), topic("group"));
    // 3 commit rounds: offsets 20..23; then 50 messages per partition.
    run_python(&broker, COMMIT_ROUNDS, &[&t, &g, "3"]);
    run_python(
        &broker,
        r#"
topic = ARGS[0]
for p in range(4):
    confluent_produce(topic, 0, 50, partition=p)
"#,
        &[&t],
    );
    let list = sluice(&["group", "--bootstrap", &bootstrap, "list"]);
    list.assert_success();
    let listed = list.stdout_text();
    assert!(
        listed
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [g.as_str(), "Empty", "classic"]),
        "{listed}"
    );

    let describe = sluice(&["group", "--bootstrap", &bootstrap, "describe", &g]);
    describe.assert_success();
    let text = describe.stdout_text();
    assert!(
        text.starts_with(&format!("Group {g}: state Empty")),
        "{text}"
    );
    for p in 0..4 {
        let row = format!("{t} {p} {} 50 {} - - -", 20 + p, 30 - p);
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == row),
            "missing {row:?} in\n{text}"
        );
    }

    // A plan changes nothing; --execute commits.
    let plan = sluice(&[
        "group",
        "--bootstrap",
        &bootstrap,
        "reset-offsets",
        &g,
        "--to-earliest",
    ]);
    plan.assert_success();
    assert!(plan.stdout_text().contains("A plan only"));
    let out = run_python(&broker, READ_COMMITTED, &[&t, &g]);
    assert_eq!(out, ["committed [20, 21, 22, 23]"]);
    for (flag, value, expected) in [
        ("--to-earliest", None, "committed [0, 0, 0, 0]"),
        ("--to-latest", None, "committed [50, 50, 50, 50]"),
        ("--to-offset", Some("7"), "committed [7, 7, 7, 7]"),
        ("--to-offset", Some("999"), "committed [50, 50, 50, 50]"),
        (
            "--to-datetime",
            Some("1970-01-01T00:00:00Z"),
            "committed [0, 0, 0, 0]",
        ),
    ] {
        let mut args = vec![
            "group",
            "--bootstrap",
            &bootstrap,
            "reset-offsets",
            &g,
            "--topic",
            &t,
            flag,
        ];
        args.extend(value);
        args.push("--execute");
        sluice(&args).assert_success();
        let out = run_python(&broker, READ_COMMITTED, &[&t, &g]);
        assert_eq!(out, [expected], "{flag} {value:?}");
    }

    let delete = sluice(&["group", "--bootstrap", &bootstrap, "delete", &g]);
    delete.assert_success();
    let again = sluice(&["group", "--bootstrap", &bootstrap, "delete", &g]);
    assert!(!again.status.success());
    assert!(
        again.stderr_text().contains("GroupIdNotFound (69)"),
        "{}",
        again.stderr_text()
    );
    let out = run_python(&broker, READ_COMMITTED, &[&t, &g]);
    assert_eq!(out, ["committed [-1001, -1001, -1001, -1001]"]);
}

/// The first group requests a broker sees create `__consumer_offsets`;
/// its partitions are opened and replayed shard by shard. Requests that
/// race that creation from several connections (so several shards) must
/// get the retriable COORDINATOR_LOAD_IN_PROGRESS, as Kafka answers while
/// loading, and never NOT_COORDINATOR, which clients surface as an error
/// (librdkafka's `committed()` failed with it).
#[test]
fn group_requests_racing_the_offsets_topic_creation_are_retriable() {
    use common::wire::{Conn, ERROR_COORDINATOR_LOAD_IN_PROGRESS, ERROR_NONE};
    use std::time::{Duration, Instant};
    for round in 0..6 {
        let broker = Broker::start();
        let addr = broker.addr();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                std::thread::spawn(move || -> Result<u32, String> {
                    let group = format!("race-{round}-{i}");
                    let mut conn =
                        Conn::connect(addr, CLIENT_TIMEOUT).map_err(|e| e.to_string())?;
                    let deadline = Instant::now() + Duration::from_secs(30);
                    let mut retries = 0;
                    loop {
                        let (find, _) = conn.find_group_coordinator_v1(&group)?;
                        let fetch = if find == ERROR_NONE {
                            conn.offset_fetch_v3(&group, "t", 0)?
                        } else {
                            (find, -1)
                        };
                        match fetch {
                            (ERROR_NONE, -1) => return Ok(retries),
                            (ERROR_NONE, offset) => {
                                return Err(format!(
                                    "{group}: committed offset {offset} in a new group"
                                ))
                            }
                            (ERROR_COORDINATOR_LOAD_IN_PROGRESS, _)
                                if Instant::now() < deadline =>
                            {
                                retries += 1;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            (code, _) => return Err(format!("{group}: error {code}")),
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            let result = t.join().expect("the request thread panicked");
            if let Err(e) = result {
                panic!("round {round}: {e}\n{}", broker.log_tail(40));
            }
        }
    }
}

#[test]
fn deleting_a_topic_deletes_its_committed_offsets() {
    let broker = Broker::start();
    let (t, g) = (topic("deleted"), topic("group"));
    run_python(&broker, COMMIT_ROUNDS, &[&t, &g, "3"]);
    let out = run_python(
        &broker,
        r#"
import time
from confluent_kafka import ConsumerGroupTopicPartitions
from confluent_kafka.admin import AdminClient, NewTopic
topic, group = ARGS[0], ARGS[1]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
def committed():
    r = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
    return sorted((tp.topic == topic, tp.partition, tp.offset) for tp in r.topic_partitions)
print("before", committed())
admin.delete_topics([topic], request_timeout=30)[topic].result(30)
deadline = Deadline(30, "the offsets of a deleted topic to go")
while committed():
    deadline.check()
    time.sleep(0.05)
print("after delete", committed())
admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
print("after re-create", committed())
"#,
        &[&t, &g],
    );
    assert_eq!(
        out,
        [
            "before [(True, 0, 20), (True, 1, 21), (True, 2, 22), (True, 3, 23)]",
            "after delete []",
            "after re-create []",
        ]
    );
}

/// KIP-848 (`group.protocol=consumer`, ConsumerGroupHeartbeat): librdkafka
/// members get a broker-side assignment, commit with their member epoch
/// and a later member resumes at the commits. The same snippet gives the
/// same lines against Kafka 4.4 (checked by hand with scripts/kafka-oracle).
#[test]
fn next_generation_consumer_groups_assign_commit_and_resume() {
    let mut broker = Broker::start();
    let (t, g) = (topic("kip848"), topic("group"));
    let out = run_python(
        &broker,
        r#"
import time
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
topic, group = ARGS[0], ARGS[1]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
for p in range(4):
    confluent_produce(topic, p * 100, 100, partition=p)
conf = {"bootstrap.servers": BOOTSTRAP, "group.id": group, "group.protocol": "consumer",
        "auto.offset.reset": "earliest", "enable.auto.commit": False}
members = [Consumer(dict(conf)) for _ in range(2)]
for c in members:
    c.subscribe([topic])
seen = set()
deadline = Deadline(60, "both members to share the topic and read it all")
while not (len(seen) == 400 and all(len(c.assignment()) == 2 for c in members)):
    deadline.check(f"seen {len(seen)}")
    for c in members:
        m = c.poll(0.1)
        if m is not None and m.error() is None:
            seen.add((m.partition(), m.offset()))
owned = [sorted(tp.partition for tp in c.assignment()) for c in members]
print("read", len(seen), "split", sorted(len(o) for o in owned), "disjoint", sorted(owned[0] + owned[1]) == [0, 1, 2, 3])
for c in members:
    c.commit(asynchronous=False)
print("committed", [tp.offset for tp in members[0].committed([TopicPartition(topic, p) for p in range(4)], timeout=30)])
listed = {g.group_id: g for g in admin.list_consumer_groups().result(30).valid}
print("listed type", str(listed[group].type))
for c in members:
    c.close()
late = Consumer(dict(conf))
late.subscribe([topic])
deadline = Deadline(60, "the late member to get every partition")
got = 0
while len(late.assignment()) < 4:
    deadline.check()
    m = late.poll(0.1)
    if m is not None and m.error() is None:
        got += 1
end = time.monotonic() + 2
while time.monotonic() < end:
    m = late.poll(0.1)
    if m is not None and m.error() is None:
        got += 1
print("resumed, read again", got)
late.close()
"#,
        &[&t, &g],
    );
    assert_eq!(
        out,
        [
            "read 400 split [2, 2] disjoint True",
            "committed [100, 100, 100, 100]",
            "listed type ConsumerGroupType.CONSUMER",
            "resumed, read again 0",
        ]
    );
    // After a SIGKILL the group is still a consumer group, Empty, as in
    // Kafka (its ConsumerGroupMetadata record), with its commits.
    broker.kill();
    broker.restart();
    let out = run_python(
        &broker,
        r#"
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient
topic, group = ARGS[0], ARGS[1]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
listed = {g.group_id: g for g in admin.list_consumer_groups().result(30).valid}
print("after a restart, listed type", str(listed[group].type), str(listed[group].state))
offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(30)
print("committed", sorted(tp.offset for tp in offsets.topic_partitions))
"#,
        &[&t, &g],
    );
    assert_eq!(
        out,
        [
            "after a restart, listed type ConsumerGroupType.CONSUMER ConsumerGroupState.EMPTY",
            "committed [100, 100, 100, 100]",
        ]
    );
}

/// A librdkafka KIP-848 member that reads on through a SIGKILL and restart
/// of the broker: it owns its partitions before, during and after, and
/// never loses them (Kafka keeps a group's members in its records, and so
/// does sluice: before, the restarted coordinator told the member it was
/// unknown and the client called its lost-partitions callback).
const MEMBER_THROUGH_A_RESTART: &str = r#"
import sys, threading, time
from confluent_kafka import Consumer
topic, group = ARGS[0], ARGS[1]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
names = lambda parts: sorted(p.partition for p in parts)
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": group, "group.protocol": "consumer",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe([topic],
            on_assign=lambda _, parts: print("assigned", names(parts)),
            on_revoke=lambda _, parts: print("revoked", names(parts)),
            on_lost=lambda _, parts: print("lost", names(parts)))
read = 0
end = time.monotonic() + 120
while not stop.is_set() and time.monotonic() < end:
    m = c.poll(0.1)
    if m is not None and m.error() is None:
        read += 1
        print("read", read)
print("closing")
c.close()
"#;

#[test]
fn a_kip848_member_keeps_its_partitions_through_a_broker_restart() {
    // Heartbeats every second, so the member's first one after the
    // restart comes soon.
    let mut broker =
        Broker::start_with_env(&[("SLUICE_GROUP__CONSUMER_HEARTBEAT_INTERVAL_MS", "1000")]);
    let (t, g) = (topic("kip848-restart"), topic("group"));
    let produce = |broker: &Broker, first: usize| {
        run_python(
            broker,
            r#"
from confluent_kafka.admin import AdminClient, NewTopic
topic, first = ARGS[0], int(ARGS[1])
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
if first == 0:
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])[topic].result(30)
for p in range(4):
    confluent_produce(topic, first + p * 10, 10, partition=p)
print("produced")
"#,
            &[&t, &first.to_string()],
        )
    };
    assert_eq!(produce(&broker, 0), ["produced"]);
    let mut member = Spawned::start(
        Command::new(python_interpreter())
            .arg("-c")
            .arg(format!("{PY_HELPERS}\n{MEMBER_THROUGH_A_RESTART}"))
            .arg(broker.bootstrap())
            .args([&t, &g])
            .env("PYTHONUNBUFFERED", "1"),
    );
    member.wait_for_line(Stream::Stdout, CLIENT_TIMEOUT, |l| {
        l == "assigned [0, 1, 2, 3]"
    });
    member.wait_for_line(Stream::Stdout, CLIENT_TIMEOUT, |l| l == "read 40");
    // A few heartbeats at its epoch, then the broker dies and comes back.
    std::thread::sleep(Duration::from_secs(3));
    broker.kill();
    broker.restart();
    assert_eq!(produce(&broker, 1000), ["produced"]);
    member.wait_for_line(Stream::Stdout, CLIENT_TIMEOUT, |l| l == "read 80");
    // Heartbeats after the restart, answered.
    std::thread::sleep(Duration::from_secs(4));
    member.close_stdin();
    member.wait_for_line(Stream::Stdout, CLIENT_TIMEOUT, |l| l == "closing");
    let events: Vec<&str> = member
        .seen
        .iter()
        .filter(|(s, l)| *s == Stream::Stdout && !l.starts_with("read "))
        .map(|(_, l)| l.as_str())
        .collect();
    assert_eq!(
        events,
        ["assigned [0, 1, 2, 3]", "closing"],
        "{}",
        broker.log_tail(40)
    );
    // Kafka's own group coordinator reads every record sluice wrote: the
    // group's, its target assignment's and its member's (key types 3, 6,
    // 5, 7 and 8), in Kafka's layouts.
    let dump = kafka::offsets_topic_dump(&broker.bootstrap());
    assert_eq!(
        kafka::live_record_types(&dump, &g),
        ["3", "5", "6", "7", "8"],
        "{dump}"
    );
    let subscribed = format!("\"subscribedTopicNames\":[\"{t}\"]");
    assert!(
        dump.lines()
            .any(|l| l.starts_with("record 5 ") && l.contains(&subscribed)),
        "{dump}"
    );
    // A member subscribed by name has the empty pattern Kafka writes.
    assert!(
        dump.lines().any(|l| l.starts_with("record 5 ")
            && l.contains(&subscribed)
            && l.contains("\"subscribedTopicRegex\":\"\"")),
        "{dump}"
    );
    // The current assignment carries each partition's assignment epoch
    // (AssignmentEpochs, a tagged field), one per partition.
    assert!(
        dump.lines().any(|l| l.starts_with("record 8 ")
            && l.contains("\"partitions\":[0,1,2,3],\"assignmentEpochs\":[2,2,2,2]")),
        "{dump}"
    );
}

/// KIP-848 server-side assignors, run against Kafka 4.4 and sluice alike
/// (the same lines from both): `range` co-partitions two topics of three
/// partitions (Kafka's own example), the default `uniform` balances ten
/// one-partition topics over three members (an even spread of each topic
/// alone gives all ten to one member), ConsumerGroupDescribe names the
/// assignor, and an unknown one is refused with UNSUPPORTED_ASSIGNOR and
/// Kafka's message (a raw heartbeat; librdkafka drops the message).
const ASSIGNORS: &str = r#"
import socket, struct, time
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
prefix = ARGS[0]
admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
specs = [("a", 3), ("b", 3)] + [(f"s{n}", 1) for n in range(10)]
futures = admin.create_topics([NewTopic(prefix + n, num_partitions=p, replication_factor=1) for n, p in specs])
for f in futures.values():
    f.result(30)

def settle(group, topics, members, total, assignor=None):
    """Members of `group` subscribed to `topics`, once their assignments
    hold `total` partitions unchanged for 3 s: each member's, sorted, and
    the assignor the group is described with."""
    conf = {"bootstrap.servers": BOOTSTRAP, "group.id": prefix + group, "group.protocol": "consumer"}
    if assignor is not None:
        conf["group.remote.assignor"] = assignor
    consumers = [Consumer(dict(conf)) for _ in range(members)]
    for c in consumers:
        c.subscribe([prefix + t for t in topics])
    deadline = Deadline(90, f"{group}: {total} partitions assigned, unchanged for 3 s")
    last, since = None, None
    while True:
        for c in consumers:
            c.poll(0.05)
        now = sorted(" ".join(sorted(f"{tp.topic[len(prefix):]}{tp.partition}" for tp in c.assignment()))
                     for c in consumers)
        if sum(len(c.assignment()) for c in consumers) == total and now == last:
            since = since or time.monotonic()
            if time.monotonic() - since > 3:
                break
        else:
            since = None
        last = now
        deadline.check(str(now))
    described = admin.describe_consumer_groups([prefix + group])[prefix + group].result(30)
    for c in consumers:
        c.close()
    return now, described.partition_assignor

split, assignor = settle("range", ["a", "b"], 2, 6, "range")
print("range:", split, "described as", assignor)
split, assignor = settle("uniform", [f"s{n}" for n in range(10)], 3, 10)
print("default:", sorted(len(s.split()) for s in split), "described as", assignor)

errors = []
c = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": prefix + "nope", "group.protocol": "consumer",
              "group.remote.assignor": "nope", "error_cb": lambda e: errors.append(e)})
c.subscribe([prefix + "a"])
deadline = Deadline(30, "an error for the unknown assignor")
while not errors:
    m = c.poll(0.1)
    if m is not None and m.error() is not None:
        errors.append(m.error())
    deadline.check()
print("unknown assignor:", errors[0].name(), errors[0].str())
c.close()

def raw_join_error(group, topic, assignor):
    """One ConsumerGroupHeartbeat v0 join naming `assignor`: its error
    code and message (names under 127 bytes: one-byte lengths)."""
    cs = lambda s: bytes([len(s) + 1]) + s.encode()
    body = (cs(group) + cs("") + struct.pack(">i", 0) + b"\0\0" + struct.pack(">i", 30000)
            + b"\x02" + cs(topic) + cs(assignor) + b"\x01" + b"\0")
    header = struct.pack(">hhih", 68, 0, 7, 3) + b"raw" + b"\0"
    host, port = BOOTSTRAP.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.settimeout(30)
        s.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        def recv(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("the broker closed the connection")
                buf += chunk
            return buf
        (size,) = struct.unpack(">i", recv(4))
        resp = recv(size)
    # Correlation id, tagged fields, throttle time, then these.
    (error,) = struct.unpack(">h", resp[9:11])
    n = resp[11] - 1
    return error, (resp[12:12 + n].decode() if n >= 0 else None)

print("raw join:", raw_join_error(prefix + "raw", prefix + "a", "nope"))
"#;

#[test]
fn kip848_server_assignors_assign_as_kafkas_do() {
    let expected = [
        "range: ['a0 a1 b0 b1', 'a2 b2'] described as range",
        "default: [3, 3, 4] described as uniform",
        "unknown assignor: _FATAL Fatal error: Broker: The assignor or its version range is not \
         supported by the consumer group: ConsumerGroupHeartbeat fatal error: Broker: The \
         assignor or its version range is not supported by the consumer group",
        "raw join: (112, 'ServerAssignor nope is not supported. Supported assignors: uniform, \
         range.')",
    ];
    // Each settle may take up to 90 s before it fails.
    let lines = |bootstrap: &str| {
        run_python_at(
            bootstrap,
            ASSIGNORS,
            &[&topic("asg")],
            Duration::from_secs(300),
        )
    };
    kafka::assert_same_with_fast_heartbeats(&expected, lines);
}

/// Raw ConsumerGroupHeartbeat v1 requests, for the snippets below.
const RAW_HEARTBEATS: &str = include_str!("clients/python/kip848_heartbeats.py");

/// KIP-848 static membership, Kafka 4.4 and sluice answering the same raw
/// ConsumerGroupHeartbeat requests alike: a static member that leaves for
/// now (epoch -2) keeps its partition (the other member does not get it),
/// and a member with its instance id and a new member id takes its place
/// with that partition and no new group epoch; an instance id still held
/// is refused (UNRELEASED_INSTANCE_ID), the replaced member is fenced
/// (FENCED_INSTANCE_ID), and unknown members and instance ids and fenced
/// epochs get Kafka's codes and messages. Epochs are printed relative to
/// the first join's.
const STATIC_MEMBERS: &str = r#"
import re, time
prefix = ARGS[0]
topic, group = prefix + "t", prefix + "g"
hb = heartbeats_on(topic, group, partitions=2)
# member id -> [epoch, owned partitions]
state = {}

base = []

def rel(epoch):
    """An epoch as the number of group epochs past the first member's
    join (Kafka's first is 2, sluice's 1); a leave's as it is."""
    if epoch <= 0:
        return str(epoch)
    base[:1] = base[:1] or [epoch]
    return f"first{epoch - base[0]:+d}"

def show(label, answer, with_assignment=True):
    error, message, member_id, epoch, assignment = answer
    if error != 0:
        # Epochs in the message, relative too.
        message = (message or "").replace(prefix, "")
        message = re.sub(r"\((\d+)\)", lambda m: f"({rel(int(m.group(1)))})", message)
        print(f"{label}: error {error}: {message}")
        return
    parts = None if assignment is None else sorted(p for _, p in assignment)
    print(f"{label}: epoch {rel(epoch)}" + (f", assignment {parts}" if with_assignment else ""))

def beat(label, member, epoch=None, instance=None, topics=None, quiet=False, with_assignment=True):
    epoch_sent, owned = state.get(member, [0, []])
    if epoch is not None:
        epoch_sent = epoch
    answer = hb.beat_past_load(group, member, epoch_sent, instance, topics,
                               [] if epoch_sent == 0 else owned)
    error, _, _, epoch_got, assignment = answer
    if error == 0:
        state[member] = [epoch_got, owned if assignment is None else assignment]
    if not quiet:
        show(label, answer, with_assignment)
    return answer

def settle(members):
    """Heartbeats round the members every 100 ms until they own both
    partitions and no answer changed anything for a second."""
    deadline = Deadline(30, "the group to settle")
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 1.0:
        for m, instance in members:
            before = list(state[m])
            beat("", m, instance=instance, quiet=True)
            if state[m] != before or sum(len(state[m][1]) for m, _ in members) != 2:
                quiet_since = time.monotonic()
        deadline.check(str(state))
        time.sleep(0.1)

# What a join answers first depends on when Kafka computes the target;
# what the group settles on does not.
beat("A joins", "A", 0, "i-a", [topic], with_assignment=False)
beat("B joins", "B", 0, None, [topic], with_assignment=False)
settle([("A", "i-a"), ("B", None)])
print("settled: A", sorted(p for _, p in state["A"][1]), rel(state["A"][0]),
      "B", sorted(p for _, p in state["B"][1]), rel(state["B"][0]))
a_epoch = state["A"][0]
beat("A leaves for now", "A", -2, "i-a")
beat("B beats", "B")
beat("B beats again", "B")
beat("A2 takes A's place", "A2", 0, "i-a", [topic])
settle([("A2", "i-a"), ("B", None)])
print("settled: A2", sorted(p for _, p in state["A2"][1]), rel(state["A2"][0]),
      "B", sorted(p for _, p in state["B"][1]), rel(state["B"][0]))
beat("A3 joins as i-a", "A3", 0, "i-a", [topic])
beat("A beats as i-a", "A", a_epoch, "i-a")
beat("X leaves as i-x", "X", -2, "i-x")
beat("A2 leaves as i-b", "A2", -2, "i-b")
beat("A2 rejoins at epoch 0", "A2", 0, "i-a", [topic])
beat("C joins subscribed to nothing", "C", 0, None, None)
beat("C joins subscribed to no topic", "C", 0, None, [])
beat("Y leaves", "Y", -1)
beat("Z beats at epoch 5", "Z", 5)
beat("B beats one epoch back", "B", state["B"][0] - 1)
beat("B beats six epochs ahead", "B", state["B"][0] + 6)
beat("B leaves", "B", -1)
beat("A2 leaves for good", "A2", -1, "i-a")
"#;

#[test]
fn kip848_static_members_leave_for_now_and_come_back_as_kafkas_do() {
    let lines = |bootstrap: &str| {
        run_python_at(
            bootstrap,
            &format!("{RAW_HEARTBEATS}\n{STATIC_MEMBERS}"),
            &[&topic("static")],
            Duration::from_secs(120),
        )
    };
    let expected = kafka::same_with_immediate_targets(lines);
    // What Kafka answered, so that a change on its side is seen too.
    assert_eq!(
        expected,
        [
            "A joins: epoch first+0",
            "B joins: epoch first+1",
            "settled: A [0] first+1 B [1] first+1",
            "A leaves for now: epoch -2, assignment None",
            "B beats: epoch first+1, assignment None",
            "B beats again: epoch first+1, assignment None",
            "A2 takes A's place: epoch first+1, assignment [0]",
            "settled: A2 [0] first+1 B [1] first+1",
            "A3 joins as i-a: error 111: Static member A3 with instance id i-a cannot join the group because the instance id is owned by A2 member.",
            "A beats as i-a: error 82: Static member A with instance id i-a was fenced by member A2.",
            "X leaves as i-x: error 25: Instance id i-x is unknown.",
            "A2 leaves as i-b: error 25: Instance id i-b is unknown.",
            "A2 rejoins at epoch 0: error 111: Static member A2 with instance id i-a cannot join the group because the instance id is owned by A2 member.",
            "C joins subscribed to nothing: error 42: Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
            "C joins subscribed to no topic: epoch first+1, assignment []",
            "Y leaves: error 25: Member Y is not a member of group g.",
            "Z beats at epoch 5: error 25: Member Z is not a member of group g.",
            "B beats one epoch back: error 110: The consumer group member has a smaller member epoch (first+0) than the one known by the group coordinator (first+1). The member must abandon all its partitions and rejoin.",
            "B beats six epochs ahead: error 110: The consumer group member has a greater member epoch (first+7) than the one known by the group coordinator (first+1). The member must abandon all its partitions and rejoin.",
            "B leaves: epoch -1, assignment None",
            "A2 leaves for good: epoch -1, assignment None",
        ]
    );
}

/// OffsetFetch v9 naming the KIP-848 member asking (raw requests): Kafka
/// answers a member at its epoch, and refuses another epoch
/// (STALE_MEMBER_EPOCH, 113) or an unknown member (UNKNOWN_MEMBER_ID, 25)
/// with the group's error; asking as no one, of a group that does not
/// exist, or of a classic group checks nothing. (A v9 request naming no
/// member but an epoch gets UNKNOWN_SERVER_ERROR from Kafka 4.4, a null
/// dereference there; sluice answers UNKNOWN_MEMBER_ID, and the case is
/// left out.)
const MEMBER_FETCHES: &str = r#"
import time
from confluent_kafka import Consumer
prefix = ARGS[0]
topic, group = prefix + "-t", prefix + "-g"
hb = heartbeats_on(topic, group)
error, _, _, epoch, _ = hb.beat_past_load(group, "m1", 0, topics=[topic], owned=[])
print(f"joined: error {error}")

def ask(label, member, epoch, group=group):
    error, offset = hb.offset_fetch(group, member, epoch, topic)
    print(f"{label}: error {error}, offset {offset}")

ask("the member at its epoch", "m1", epoch)
ask("the member at a newer epoch", "m1", epoch + 1)
ask("the member at an older epoch", "m1", epoch - 1)
ask("the member with no epoch", "m1", -1)
ask("an unknown member", "nobody", epoch)
ask("an empty member id, no epoch", "", -1)
ask("no member, no epoch", None, -1)
ask("a group that does not exist", "m1", epoch, group=prefix + "-none")
classic = prefix + "-classic"
consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": classic})
consumer.subscribe([topic])
deadline = Deadline(30, "the classic consumer's assignment")
while not consumer.assignment():
    deadline.check()
    consumer.poll(0.2)
ask("a classic group, any member", "someone", 3, group=classic)
consumer.close()
print(f"leave: error {hb.beat(group, 'm1', -1)[0]}")
"#;

#[test]
fn kip848_members_fetch_offsets_at_their_epoch_as_on_kafka() {
    let expected = [
        "joined: error 0",
        "the member at its epoch: error 0, offset -1",
        "the member at a newer epoch: error 113, offset None",
        "the member at an older epoch: error 113, offset None",
        "the member with no epoch: error 113, offset None",
        "an unknown member: error 25, offset None",
        "an empty member id, no epoch: error 25, offset None",
        "no member, no epoch: error 0, offset -1",
        "a group that does not exist: error 0, offset -1",
        "a classic group, any member: error 0, offset -1",
        "leave: error 0",
    ];
    let prefix = topic("member-fetch");
    kafka::assert_same_with_fast_heartbeats(&expected, |bootstrap| {
        run_python_at(
            bootstrap,
            &format!("{RAW_HEARTBEATS}\n{MEMBER_FETCHES}"),
            &[&prefix],
            Duration::from_secs(120),
        )
    });
}

/// KIP-848 group epochs, raw heartbeats against Kafka 4.4 and sluice: a
/// new group's first member gets epoch 2 when it subscribes to a topic
/// (made or not) and 1 when it subscribes to nothing (never 0, the epoch
/// of a join); later members and leaves move it on from there, also in a
/// group a simple commit made first.
const EPOCHS: &str = r#"
from confluent_kafka import Consumer, TopicPartition
prefix = ARGS[0]
topic = prefix + "-t"
hb = heartbeats_on(topic, prefix + "-named")

def join(label, group, member, topics):
    error, _, _, epoch, _ = hb.beat_past_load(prefix + "-" + group, member, 0, topics=topics, owned=[])
    print(f"{label}: error {error}, epoch {epoch}")
    return epoch

join("a first member of a topic", "named", "m1", [topic])
join("a second member of it", "named", "m2", [topic])
join("a first member of a topic not made", "unmade", "m1", [prefix + "-none"])
epoch = join("a first member of nothing", "nothing", "m1", [])
join("a second member of nothing", "nothing", "m2", [])
error, _, _, epoch, _ = hb.beat(prefix + "-nothing", "m1", epoch, topics=[topic], owned=[])
print(f"the first then subscribes to the topic: error {error}, epoch {epoch}")
committer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": prefix + "-committed"})
committer.commit(offsets=[TopicPartition(topic, 0, 5)], asynchronous=False)
committer.close()
join("a first member after a simple commit", "committed", "m1", [topic])
print(f"it leaves: error {hb.beat(prefix + '-committed', 'm1', -1)[0]}")
join("the next member", "committed", "m2", [topic])
"#;

#[test]
fn kip848_group_epochs_are_kafkas() {
    let expected = [
        "a first member of a topic: error 0, epoch 2",
        "a second member of it: error 0, epoch 3",
        "a first member of a topic not made: error 0, epoch 2",
        "a first member of nothing: error 0, epoch 1",
        "a second member of nothing: error 0, epoch 1",
        "the first then subscribes to the topic: error 0, epoch 2",
        "a first member after a simple commit: error 0, epoch 2",
        "it leaves: error 0",
        "the next member: error 0, epoch 4",
    ];
    let prefix = topic("epochs");
    let lines = |bootstrap: &str| {
        run_python_at(
            bootstrap,
            &format!("{RAW_HEARTBEATS}\n{EPOCHS}"),
            &[&prefix],
            Duration::from_secs(120),
        )
    };
    assert_eq!(kafka::same_with_immediate_targets(lines), expected);
}
